import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { NAMED_BIN } from '../../devenv/bind.js';
import { pidAlive } from '../../devenv/index.js';
import { chainVerifiesTo } from '../../src/util/x509.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Runs `npm run demo -- <args>` in its own process group, like a terminal would. */
function demo(args: string[], extraEnv: Record<string, string> = {}) {
  const child = spawn('npm', ['run', '-s', 'demo', '--', ...args], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'warn', ...extraEnv },
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<number | null>((resolve) => child.on('close', resolve));
  return { child, output: () => out, done };
}

function startedPids(out: string): number[] {
  const line = /processes\s+([\d ]+)/.exec(out)?.[1] ?? '';
  return line.trim().split(/\s+/).filter(Boolean).map(Number);
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pids: number[], ms = 10_000): Promise<number[]> {
  const until = Date.now() + ms;
  let alive = pids.filter(pidAlive);
  while (alive.length && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 100));
    alive = pids.filter(pidAlive);
  }
  return alive;
}

describe('e2e: npm run demo', function () {
  this.timeout(120_000);

  it('--once issues production certificates (with BIND 9 installed, a wildcard by DNS-01 too) that verify against the demo production CA, and leaves no process behind', async () => {
    const run = demo(['--once', '--keep']);
    const code = await run.done;
    const out = run.output();
    assert.equal(code, 0, out);
    const dir = /production CA root\s+(\S+)\/production-root\.pem/.exec(out)?.[1];
    assert.ok(dir, out);
    try {
      const root = await readFile(path.join(dir, 'production-root.pem'), 'utf8');
      const names = (await readdir(path.join(dir, 'certs', 'live'))).sort();
      // CI installs bind9: there the wildcard branch is the one that runs.
      const withBind = existsSync(NAMED_BIN);
      assert.deepEqual(names, [
        'api.demo.test',
        'shop',
        ...(withBind ? ['wild'] : []),
        'www.demo.test',
      ]);
      if (withBind) {
        const cert = new X509Certificate(
          await readFile(path.join(dir, 'certs', 'live', 'wild', 'cert.pem')),
        );
        assert.match(cert.subjectAltName ?? '', /DNS:\*\.wild\.test/);
        // nginx serves it for a name the wildcard covers.
        assert.match(out, /ok {3}wild\s+production .* nginx serves serial (\w+)/);
        assert.equal(
          /wild\s+production .* nginx serves serial (\w+)/.exec(out)?.[1],
          cert.serialNumber,
          out,
        );
      } else {
        assert.match(out, /skipping the wildcard certificate/);
      }
      for (const name of names) {
        const fullchain = await readFile(
          path.join(dir, 'certs', 'live', name, 'fullchain.pem'),
          'utf8',
        );
        assert.ok(chainVerifiesTo(fullchain, root), `${name} verifies against the production root`);
      }
      const pids = startedPids(out);
      assert.ok(pids.length >= 4, `pids printed: ${pids.join(' ')}`);
      assert.deepEqual(await waitGone(pids), [], 'every process the demo started has exited');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('PLATFORM=rancher pushes each certificate from the labelled services to the fake Rancher API', async () => {
    const run = demo(['--once'], { PLATFORM: 'rancher' });
    const code = await run.done;
    const out = run.output();
    assert.equal(code, 0, out);
    const served = new Map(
      [...out.matchAll(/ok {3}(\S+)\s+production .* nginx serves serial (\w+)/g)].map((m) => [
        m[1],
        m[2],
      ]),
    );
    const pushed = new Map(
      [...out.matchAll(/certificate (\S+)\s+id=\w+ serial=(\d+)/g)].map((m) => [
        m[1],
        BigInt(m[2] ?? '0')
          .toString(16)
          .toUpperCase(),
      ]),
    );
    assert.deepEqual([...pushed.keys()].sort(), ['api.demo.test', 'shop', 'www.demo.test']);
    for (const [name, serial] of pushed) {
      assert.equal(
        BigInt(`0x${served.get(name) ?? '0'}`),
        BigInt(`0x${serial}`),
        `${name}: platform holds what nginx serves`,
      );
    }
    assert.deepEqual(await waitGone(startedPids(out)), []);
  });

  it('Ctrl-C stops the sidecar and everything the demo started', async () => {
    const run = demo([]);
    const until = Date.now() + 60_000;
    while (!run.output().includes('Ctrl-C stops everything') && Date.now() < until) {
      if (run.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(run.output(), /Ctrl-C stops everything/);
    const pids = startedPids(run.output());
    const group = run.child.pid as number;
    process.kill(-group, 'SIGINT');
    await run.done;
    assert.doesNotMatch(run.output(), /demo failed/);
    assert.deepEqual(await waitGone(pids), [], 'CAs, DNS and nginx stopped');
    // The sidecar (tsx, node) ran in the demo's process group: it must be empty.
    const until2 = Date.now() + 10_000;
    while (groupAlive(group) && Date.now() < until2) await new Promise((r) => setTimeout(r, 100));
    assert.equal(groupAlive(group), false, 'no process left in the demo process group');
  });
});
