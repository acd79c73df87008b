// devenv/dockerd.ts: a real, confined dockerd starts, imports the busybox
// image, runs containers off the network, and leaves nothing behind.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import {
  engineProcesses,
  importBusyboxImage,
  mountsUnder,
  startDockerd,
  type DockerEngine,
} from '../../devenv/dockerd.js';
import { pidAlive } from '../../devenv/proc.js';

describe('devenv dockerd', function () {
  this.timeout(120000);
  let engine: DockerEngine | undefined;

  after(async () => {
    await engine?.stop();
  });

  it('starts on a short socket, runs a labelled busybox container with --network none, restarts, and stop() leaves no process, mount or directory', async () => {
    const t0 = Date.now();
    engine = await startDockerd();
    const started = Date.now() - t0;
    assert.ok(Buffer.byteLength(engine.socketPath) < 108, engine.socketPath);
    assert.equal(engine.env.DOCKER_HOST, `unix://${engine.socketPath}`);

    // The host's /etc/docker is not read, and no bridge exists.
    const info = JSON.parse((await engine.request('GET', '/info')).body) as {
      Driver: string;
      DockerRootDir: string;
    };
    assert.equal(info.Driver, 'vfs');
    assert.ok(info.DockerRootDir.startsWith(engine.dir), info.DockerRootDir);
    const nets = JSON.parse((await engine.request('GET', '/networks')).body) as {
      Name: string;
    }[];
    assert.deepEqual(nets.map((n) => n.Name).sort(), ['host', 'none']);

    const t1 = Date.now();
    const imageId = await importBusyboxImage(engine, 'acme-test/busybox:1');
    const imported = Date.now() - t1;
    assert.match(imageId, /^sha256:[0-9a-f]{64}$/);

    const echo = await engine.docker([
      'run',
      '--rm',
      '--network',
      'none',
      'acme-test/busybox:1',
      'sh',
      '-c',
      'echo hello from $(hostname)',
    ]);
    assert.equal(echo.code, 0, echo.stderr);
    assert.match(echo.stdout, /^hello from \w+/);

    const run = await engine.docker([
      'run',
      '-d',
      '--network',
      'none',
      '--label',
      'io.acme-sidecar.domains=a.example.test',
      'acme-test/busybox:1',
      'sleep',
      '1000',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const list = await engine.request(
      'GET',
      `/containers/json?filters=${encodeURIComponent(JSON.stringify({ label: ['io.acme-sidecar.domains'] }))}`,
    );
    const containers = JSON.parse(list.body) as {
      Labels: Record<string, string>;
      HostConfig: { NetworkMode: string };
    }[];
    assert.equal(containers.length, 1);
    assert.equal(containers[0]?.Labels['io.acme-sidecar.domains'], 'a.example.test');
    assert.equal(containers[0]?.HostConfig.NetworkMode, 'none');

    // dockerd, containerd, the shim and the container's sleep.
    const pids = engine.pids();
    assert.ok(pids.length >= 4, `engine processes: ${pids.join(' ')}`);
    const sleeping = pids.filter((p) =>
      readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('sleep\u00001000'),
    );
    assert.equal(sleeping.length, 1, 'the container process is found as part of the engine');

    // restart(): the daemon and containerd are replaced, the container keeps running.
    const oldDaemon = engine.process.pid;
    await engine.restart();
    assert.notEqual(engine.process.pid, oldDaemon);
    assert.equal(pidAlive(oldDaemon), false);
    assert.equal(pidAlive(sleeping[0] ?? -1), true, 'live-restore keeps the container');
    const ps = await engine.docker(['ps', '-q']);
    assert.equal(ps.stdout.trim().split('\n').length, 1, ps.stdout);

    const all = [...new Set([...pids, ...engine.pids()])];
    const dir = engine.dir;
    const t2 = Date.now();
    await engine.stop();
    const stopped = Date.now() - t2;
    engine = undefined;
    assert.deepEqual(
      all.filter(pidAlive),
      [],
      'every process of the engine (shims and containers included) has exited',
    );
    assert.deepEqual(engineProcesses(dir), []);
    assert.deepEqual(mountsUnder(dir), []);
    assert.equal(existsSync(dir), false);
    console.log(
      `      dockerd: start ${started} ms, busybox import ${imported} ms, stop with a running container ${stopped} ms`,
    );
  });

  it('refuses a base directory whose socket paths would not fit sun_path', async () => {
    await assert.rejects(
      startDockerd({ baseDir: `/tmp/${'x'.repeat(90)}` }),
      /UNIX socket path limit/,
    );
  });
});
