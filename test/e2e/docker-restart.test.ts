// e2e (issue 16 item 5): what the Docker platform learns survives a restart.
// A real dockerd, real Pebble and the real CLI, run as `acme-sidecar once`
// again and again (each run is a restarted sidecar):
// - a removed container's certificate is still wanted by the next processes
//   within DOCKER_STOPPED_GRACE_HOURS, counted from when the first process
//   noticed the removal, and dropped after it;
// - an idle `once` signals no reload target; a pass that changes live/ does.
// Reloads are counted as docker-platform.test.ts does: the target container
// traps SIGHUP and prints a line.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { importBusyboxImage, startDockerd, type DockerEngine } from '../../devenv/dockerd.js';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { freePort } from '../../devenv/proc.js';
import { DOMAINS_LABEL } from '../../src/platform/labels.js';
import {
  collect,
  runSidecar,
  sidecarEnv,
  startSidecar,
  type RunResult,
} from '../support/sidecar.js';

const IMAGE = 'acme-test/busybox:1';
const APP = 'app.restart.test';
const NEXT = 'next.restart.test';
/** 18 s: long enough for two `once` runs, short enough to wait out. */
const GRACE_HOURS = '0.005';
const GRACE_MS = 0.005 * 3600_000;

describe('e2e: PLATFORM=docker across restarts (grace period and reload signals)', function () {
  this.timeout(240_000);
  let env: DevEnv | undefined;
  let engine: DockerEngine | undefined;

  before(async function () {
    this.timeout(180_000);
    [env, engine] = await Promise.all([startDevEnv(), startDockerd()]);
    await importBusyboxImage(engine, IMAGE);
  });
  after(async function () {
    this.timeout(60_000);
    await Promise.all([env?.stop(), engine?.stop()]);
  });

  it('keeps a removed container for the grace period across restarts, then drops it; an idle once signals nobody', async () => {
    if (!env || !engine) throw new Error('not started');
    const dev = env;
    const docker = engine;
    const run = async (name: string, labels: Record<string, string>, cmd: string[]) => {
      const args = ['run', '-d', '--name', name, '--network', 'none'];
      for (const [k, v] of Object.entries(labels)) args.push('--label', `${k}=${v}`);
      const r = await docker.docker([...args, IMAGE, ...cmd]);
      assert.equal(r.code, 0, r.stderr);
    };
    await run('reloader', { 'io.acme-sidecar.reload': 'true' }, [
      'sh',
      '-c',
      "trap 'echo reload' HUP; echo ready; while :; do sleep 0.1; done",
    ]);
    const reloads = async (): Promise<number> =>
      (await docker.docker(['logs', 'reloader'])).stdout.split('\n').filter((l) => l === 'reload')
        .length;
    for (let i = 0; !(await docker.docker(['logs', 'reloader'])).stdout.includes('ready'); i++) {
      if (i > 300) throw new Error('the reloader never set its trap');
      await sleep(20);
    }
    await run('app', { [DOMAINS_LABEL]: APP }, ['sleep', '100000']);

    const vars = sidecarEnv(dev, {
      PLATFORM: 'docker',
      DOCKER_HOST: docker.host,
      DOCKER_STOPPED_GRACE_HOURS: GRACE_HOURS,
      STAGING: 'true',
    });
    const once = async (): Promise<RunResult> => {
      const r = await runSidecar(['once'], vars);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr.slice(-3000)}`);
      return r;
    };
    const wants = (r: RunResult, name: string) =>
      r.stdout.split('\n').some((l) => l.startsWith(`ok   ${name} `));
    /**
     * The reloads once `expected` have reached the reloader's log (its trap
     * runs between two `sleep 0.1`, then dockerd copies the line: no fixed
     * time covers a loaded machine), and half a second more, deliberate: no
     * further one may follow.
     */
    const reloadsSettled = async (expected: number) => {
      for (const end = Date.now() + 15_000; Date.now() < end && (await reloads()) < expected;) {
        await sleep(100);
      }
      await sleep(500);
      return reloads();
    };

    const first = await once();
    assert.ok(wants(first, APP), `the first once issues ${APP}\n${first.stdout}`);
    assert.equal(await reloadsSettled(1), 1, 'the pass that wrote live/ signals the reloader');

    const idle = await once();
    assert.ok(wants(idle, APP), idle.stdout);
    assert.equal(await reloadsSettled(1), 1, 'an idle once (a new process) signals nobody');

    // A daemon start is a new process too: its first pass, idle, signals nobody.
    const port = await freePort();
    const daemon = startSidecar(['run'], { ...vars, STATUS_ADDRESS: `127.0.0.1:${port}` });
    const stopped = collect(daemon, 60_000);
    try {
      for (let i = 0; ; i++) {
        const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
          (r) => r.status === 200,
          () => false,
        );
        if (ready) break;
        if (i > 600 || daemon.exitCode !== null) throw new Error('the daemon never became ready');
        await sleep(50);
      }
    } finally {
      daemon.kill('SIGTERM');
    }
    assert.equal((await stopped).code, 0);
    assert.equal(
      await reloadsSettled(1),
      1,
      'an idle first pass of a restarted daemon signals nobody',
    );

    assert.equal((await docker.docker(['rm', '-f', 'app'])).code, 0);
    const noticed = await once();
    const noticedBy = Date.now();
    assert.ok(
      wants(noticed, APP),
      `a restarted sidecar keeps a removed container's certificate within the grace\n${noticed.stdout}`,
    );
    assert.equal(await reloadsSettled(1), 1, 'nothing changed in live/: no signal');

    // Past the grace counted from the first notice (not from the last restart).
    await sleep(Math.max(0, noticedBy + GRACE_MS + 1000 - Date.now()));
    await run('next', { [DOMAINS_LABEL]: NEXT }, ['sleep', '100000']);
    const past = await once();
    assert.ok(!wants(past, APP), `dropped after the grace\n${past.stdout}`);
    assert.ok(wants(past, NEXT), past.stdout);
    assert.equal(await reloadsSettled(2), 2, 'a pass that changed live/ signals');
  });
});
