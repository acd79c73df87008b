// PLATFORM=docker against a real Docker engine (devenv/dockerd.ts, started
// once for this file): discovery from container labels and env, the event
// stream (latency printed), resync after the stream drops, the stopped
// grace period, reload signals, and the shared Platform contract.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { importBusyboxImage, startDockerd, type DockerEngine } from '../../devenv/dockerd.js';
import { errorCode } from '../../src/domain/errors.js';
import type { Clock } from '../../src/lifecycle/clock.js';
import {
  DockerPlatform,
  type DockerPlatformOptions,
} from '../../src/platform/docker/docker-platform.js';
import { DockerEngineClient } from '../../src/platform/docker/engine-client.js';
import { DENT_LABEL, DOMAINS_LABEL } from '../../src/platform/labels.js';
import type { Discovery } from '../../src/platform/platform.js';
import { silentLogger, type Logger } from '../../src/util/log.js';
import { platformContract } from '../unit/platform-contract.js';

const IMAGE = 'acme-test/busybox:1';
let engine: DockerEngine | undefined;

function dockerd(): DockerEngine {
  if (!engine) throw new Error('dockerd not started');
  return engine;
}

/** `docker run -d --network none` with labels and env; returns the container id. */
async function runContainer(
  opts: { labels?: Record<string, string>; env?: Record<string, string>; name?: string } = {},
  command: string[] = ['sleep', '100000'],
  verb: 'run' | 'create' = 'run',
): Promise<string> {
  const args = [verb, ...(verb === 'run' ? ['-d'] : []), '--network', 'none'];
  if (opts.name) args.push('--name', opts.name);
  for (const [k, v] of Object.entries(opts.labels ?? {})) args.push('--label', `${k}=${v}`);
  for (const [k, v] of Object.entries(opts.env ?? {})) args.push('--env', `${k}=${v}`);
  const r = await dockerd().docker([...args, IMAGE, ...command]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

async function removeAll(): Promise<void> {
  const ids = (await dockerd().docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
  if (ids.length) await dockerd().docker(['rm', '-f', ...ids]);
}

/** A clock the test can move forward, on top of real time (the engine's timestamps are real). */
class ShiftClock implements Clock {
  offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
}

function platform(
  opts: Partial<DockerPlatformOptions> & { socketPath?: string; log?: Logger } = {},
): DockerPlatform {
  const log = opts.log ?? silentLogger;
  const client = new DockerEngineClient({
    socketPath: opts.socketPath ?? dockerd().socketPath,
    timeoutMs: 5000,
    attempts: 1,
    log,
  });
  return new DockerPlatform(client, {
    domains: async () => '',
    stoppedGraceMs: 60_000,
    reconnectMinMs: 100,
    reconnectMaxMs: 1000,
    ...opts,
    log,
  });
}

const names = (d: Discovery): string[] => d.specs.map((s) => s.name).sort();

/** A logger that keeps every line ("info message"), to wait for what the platform reports. */
function recordingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const record =
    (level: string) =>
    (message: string): void => {
      lines.push(`${level} ${message}`);
    };
  const log: Logger = {
    error: record('error'),
    warn: record('warn'),
    info: record('info'),
    debug: record('debug'),
    child: () => log,
  };
  return { log, lines };
}

/** Resolves once `lines` shows the event stream open (the platform logs it when it is). */
const streamOpen = (lines: readonly string[]): Promise<true> =>
  until('the event stream to open', async () =>
    lines.some((l) => l.includes('following Docker container events')) ? true : undefined,
  );

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// One dockerd for this file, started and stopped inside its own suite (root
// hooks would keep it running through every other test file).
describe('Docker platform (one real dockerd)', function () {
  before(async function () {
    this.timeout(120_000);
    engine = await startDockerd();
    await importBusyboxImage(engine, IMAGE);
  });
  after(async function () {
    this.timeout(60_000);
    await engine?.stop();
  });

  platformContract('docker (real engine)', async () => {
    let domains = '';
    return {
      // No grace: a container removed by reset() is gone at once (the grace period has its own test).
      platform: platform({ domains: async () => domains, stoppedGraceMs: 0 }),
      setDomains: (v) => {
        domains = v;
      },
      declare: async (entry) => {
        await runContainer({ labels: { [DOMAINS_LABEL]: entry } });
      },
      reset: async () => {
        domains = '';
        await removeAll();
      },
      unreachable: () => platform({ socketPath: '/nonexistent/docker.sock' }),
      unreachableCode: 'PLATFORM_UNAVAILABLE',
    };
  });

  describe('DockerPlatform on a real engine', function () {
    this.timeout(60_000);
    afterEach(removeAll);

    it('reads both labels of running containers, skips unlabelled ones, and reports a bad label without dropping the rest', async () => {
      await Promise.all([
        runContainer({ labels: { [DENT_LABEL]: 'a.docker.test,b.docker.test' } }),
        runContainer({ labels: { [DOMAINS_LABEL]: 'shop=shop.docker.test+cdn.docker.test' } }),
        runContainer({ labels: { 'com.example.other': 'x.docker.test' } }),
        runContainer({
          name: 'badly-labelled',
          labels: { [DOMAINS_LABEL]: 'ok.docker.test,a*.docker.test' },
        }),
      ]);
      const d = await platform({ domains: async () => 'env.docker.test' }).discover();
      assert.deepEqual(names(d), [
        'a.docker.test',
        'b.docker.test',
        'env.docker.test',
        'ok.docker.test',
        'shop',
      ]);
      assert.deepEqual(d.specs.find((s) => s.name === 'shop')?.domains, [
        'shop.docker.test',
        'cdn.docker.test',
      ]);
      assert.equal(d.problems.length, 1);
      assert.equal(d.problems[0]?.code, 'wildcard');
      assert.match(
        d.problems[0]?.source ?? '',
        /^docker:container\/badly-labelled\([0-9a-f]{12}\):/,
      );
    });

    it('reads nginx-proxy env hostnames only when asked, LETSENCRYPT_HOST before VIRTUAL_HOST', async () => {
      await Promise.all([
        runContainer({
          env: {
            LETSENCRYPT_HOST: 'le.docker.test,www.le.docker.test',
            VIRTUAL_HOST: 'v.docker.test',
          },
        }),
        runContainer({ env: { VIRTUAL_HOST: 'only-virtual.docker.test', SECRET: 'hunter2' } }),
        runContainer({ env: { LETSENCRYPT_HOST: 'bad host.docker.test' } }),
      ]);
      assert.deepEqual(names(await platform().discover()), [], 'off by default');
      const d = await platform({ envHostnames: ['LETSENCRYPT_HOST', 'VIRTUAL_HOST'] }).discover();
      assert.deepEqual(names(d), ['le.docker.test', 'only-virtual.docker.test']);
      assert.deepEqual(d.specs.find((s) => s.name === 'le.docker.test')?.domains, [
        'le.docker.test',
        'www.le.docker.test',
      ]);
      assert.equal(d.problems.length, 1, JSON.stringify(d.problems));
      assert.match(d.problems[0]?.source ?? '', /:env:LETSENCRYPT_HOST$/);
      assert.ok(!JSON.stringify(d).includes('hunter2'), 'other variables are never read out');
      const onlyLe = await platform({ envHostnames: ['LETSENCRYPT_HOST'] }).discover();
      assert.deepEqual(names(onlyLe), ['le.docker.test']);
    });

    it('keeps a stopped or removed container for the grace period, then drops it; a never-started one does not count', async () => {
      const clock = new ShiftClock();
      const p = platform({ clock, stoppedGraceMs: 60_000 });
      const [stopped, removed] = await Promise.all([
        runContainer({ labels: { [DOMAINS_LABEL]: 'stopped.docker.test' } }),
        runContainer({ labels: { [DOMAINS_LABEL]: 'removed.docker.test' } }),
        runContainer({ labels: { [DOMAINS_LABEL]: 'running.docker.test' } }),
        runContainer({ labels: { [DOMAINS_LABEL]: 'created.docker.test' } }, undefined, 'create'),
      ]);
      assert.deepEqual(names(await p.discover()), [
        'removed.docker.test',
        'running.docker.test',
        'stopped.docker.test',
      ]);
      assert.equal((await dockerd().docker(['stop', '-t', '0', stopped])).code, 0);
      assert.equal((await dockerd().docker(['rm', '-f', removed])).code, 0);
      clock.offsetMs = 50_000; // within the grace period
      assert.deepEqual(names(await p.discover()), [
        'removed.docker.test',
        'running.docker.test',
        'stopped.docker.test',
      ]);
      clock.offsetMs = 61_000; // past it for the stopped one (it stopped at offset 0)
      assert.deepEqual(names(await p.discover()), ['removed.docker.test', 'running.docker.test']);
      // The removed one counts from when it was noticed gone (offset 50 s).
      clock.offsetMs = 111_000;
      assert.deepEqual(names(await p.discover()), ['running.docker.test']);
      clock.offsetMs = 61_000;
      // Started again: wanted again.
      assert.equal((await dockerd().docker(['start', stopped])).code, 0);
      assert.deepEqual(names(await p.discover()), ['running.docker.test', 'stopped.docker.test']);
      // A fresh platform (a restarted sidecar) reads when it stopped from the engine.
      assert.equal((await dockerd().docker(['stop', '-t', '0', stopped])).code, 0);
      const fresh = platform({ clock, stoppedGraceMs: 60_000 });
      assert.deepEqual(names(await fresh.discover()), ['running.docker.test']);
      clock.offsetMs = 0;
      assert.deepEqual(names(await fresh.discover()), [
        'running.docker.test',
        'stopped.docker.test',
      ]);
    });

    it('throws a coded error when the engine cannot be reached, and names the socket', async () => {
      await assert.rejects(
        platform({ socketPath: '/nonexistent/docker.sock' }).discover(),
        (err) => {
          assert.equal(errorCode(err), 'PLATFORM_UNAVAILABLE');
          assert.match(String(err), /\/nonexistent\/docker\.sock/);
          return true;
        },
      );
    });

    it('notices a new labelled container from the event stream within seconds', async () => {
      const { log, lines } = recordingLogger();
      const p = platform({ log });
      const changes: { at: number; why: string }[] = [];
      const watch = p.watch((why) => changes.push({ at: Date.now(), why }));
      try {
        await streamOpen(lines);
        const t0 = Date.now();
        await runContainer({ name: 'late', labels: { [DOMAINS_LABEL]: 'late.docker.test' } });
        const runReturned = Date.now();
        const change = await until('a change notification', async () => changes[0]);
        const discovered = await until('discovery of the new container', async () =>
          names(await p.discover()).includes('late.docker.test') ? Date.now() : undefined,
        );
        assert.match(change.why, /container late start/);
        assert.ok(change.at - t0 < 10_000, `${change.at - t0} ms`);
        console.log(
          `      event latency: docker run -> notified ${change.at - t0} ms ` +
            `(run returned after ${runReturned - t0} ms; notified ${change.at - runReturned} ms later), ` +
            `-> discovered ${discovered - t0} ms`,
        );
        // A stop is an event too (its hostnames go after the grace period).
        changes.length = 0;
        assert.equal((await dockerd().docker(['stop', '-t', '0', 'late'])).code, 0);
        const stop = await until('a notification for the stop', async () => changes[0]);
        assert.match(stop.why, /container late die/);
      } finally {
        await watch.close();
      }
    });

    it('reconnects when the event stream drops (dockerd restarted), resyncs, and keeps following events', async () => {
      const { log, lines } = recordingLogger();
      const p = platform({ log });
      const changes: string[] = [];
      const watch = p.watch((why) => changes.push(why));
      try {
        await streamOpen(lines);
        const t0 = Date.now();
        await dockerd().restart();
        const restarted = Date.now();
        await until(
          'a resync notification',
          async () => (changes.some((c) => /reconnected/.test(c)) ? true : undefined),
          30_000,
        );
        const resynced = Date.now();
        assert.ok(
          lines.some((l) => /Docker event stream (ended|failed); reconnecting/.test(l)),
          lines.join('\n'),
        );
        changes.length = 0;
        await runContainer({ name: 'after', labels: { [DOMAINS_LABEL]: 'after.docker.test' } });
        await until('an event after the reconnect', async () =>
          changes.find((c) => /container after start/.test(c)),
        );
        assert.ok(names(await p.discover()).includes('after.docker.test'));
        console.log(
          `      stream drop: dockerd restart took ${restarted - t0} ms; resync notified ${resynced - restarted} ms after it was back`,
        );
      } finally {
        await watch.close();
      }
    });

    it('signals reload-labelled running containers once per change of what live/ serves, and no others', async () => {
      // Each HUP prints a line; `docker logs` shows them.
      const script = "trap 'echo reload' HUP; echo ready; while :; do sleep 0.1; done";
      const nginx = await runContainer(
        { name: 'fake-nginx', labels: { 'io.acme-sidecar.reload': 'true' } },
        ['sh', '-c', script],
      );
      const other = await runContainer(
        { name: 'other', labels: { 'io.acme-sidecar.reload': 'no' } },
        ['sh', '-c', script],
      );
      const reloads = async (id: string) =>
        (await dockerd().docker(['logs', id])).stdout.split('\n').filter((l) => l === 'reload')
          .length;
      await until('the trap to be set', async () =>
        (await dockerd().docker(['logs', nginx])).stdout.includes('ready') ? true : undefined,
      );
      const p = platform({ reloadLabel: 'io.acme-sidecar.reload=true' });
      await p.reload([{ name: 'a', serial: '01' }]);
      await until('one reload', async () => ((await reloads(nginx)) === 1 ? true : undefined));
      await p.reload([{ name: 'a', serial: '01' }]);
      await p.reload([{ name: 'a', serial: '01' }]);
      await p.reload([
        { name: 'b', serial: '02' },
        { name: 'a', serial: '01' },
      ]);
      await until('the second reload', async () =>
        (await reloads(nginx)) === 2 ? true : undefined,
      );
      // Deliberate: no third reload may follow during this half second.
      await sleep(500);
      assert.equal(await reloads(nginx), 2, 'an unchanged set is not signalled again');
      assert.equal(await reloads(other), 0, 'a container without the label value is left alone');
      // A stopped target is skipped, not an error.
      assert.equal((await dockerd().docker(['stop', '-t', '0', nginx])).code, 0);
      await p.reload([{ name: 'a', serial: '03' }]);
    });
  });
});
