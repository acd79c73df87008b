import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { appendFile, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { inotifyWatchCount } from '../../devenv/proc.js';
import { collect, runSidecar, sidecarEnv, startSidecar } from '../support/sidecar.js';
import { waitFor } from '../support/wait.js';

/** `dir` and the directories below it, not counting dot names and `skip` at the top. */
async function directories(dir: string, skip: string[] = []): Promise<number> {
  let n = 1;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (!e.isDirectory() || e.name.startsWith('.') || skip.includes(e.name)) continue;
    n += await directories(path.join(dir, e.name));
  }
  return n;
}

function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  return waitFor(probe, { what, timeoutMs: ms, intervalMs: 100 }) as Promise<T>;
}

describe('e2e: watches (deleted live/ files, DOMAINS_FILE)', function () {
  this.timeout(120_000);
  let env: DevEnv;
  before(async () => {
    env = await startDevEnv();
  });
  after(() => env?.stop());

  it('regenerates deleted certificate files and follows DOMAINS_FILE edits, with no discovery loop', async () => {
    const file = path.join(env.dir, 'domains.txt');
    await writeFile(file, '# the certificates of this test\nw1.demo.test\n');
    // LOOP_TIME=0: only the watches (and the daily schedule) start a pass.
    const vars = sidecarEnv(env, { DOMAINS: '', DOMAINS_FILE: file, LOOP_TIME: '0' });
    const daemon = startSidecar(['run'], vars);
    const done = collect(daemon, 100_000);
    const serial = (name: string) =>
      readFile(path.join(env.certDir, 'live', name, 'cert.pem'), 'utf8').then(
        (pem) => new X509Certificate(pem).serialNumber,
      );
    // Status first, then the file: once staging is served, live/ holds it.
    const staged = async (name: string) => {
      const status = (await runSidecar(['status'], vars)).stdout;
      const re = new RegExp(`${name.replace(/\./g, '\\.')}\\s+staging\\s+yes`);
      return re.test(status) ? serial(name) : undefined;
    };
    try {
      const first = await until('w1 issued', () => staged('w1.demo.test'));
      // The kernel's count of the daemon's watches: live/, one per entry of
      // it (the version its link points at) and DOMAINS_FILE, not every file
      // and directory of archive/ (chokidar at depth 3 held 8 for one certificate
      // with one version, 13 with two, plus DOMAINS_FILE); and one per
      // directory of the store (STATE_DIR, here the same directory, without
      // live/ and archive/), which keep records across passes, never one per file.
      const entries = (await readdir(path.join(env.certDir, 'live'))).length;
      const storeDirs = await directories(env.certDir, ['live', 'archive']);
      const watches = inotifyWatchCount(daemon.pid ?? 0);
      assert.ok(
        watches > 0 && watches <= entries + 2 + storeDirs,
        `${watches} watches, ${entries} in live/, ${storeDirs} store directories`,
      );

      // A record corrupted by hand while the daemon runs: the daemon keeps
      // records across passes only while their directory's watch is quiet,
      // so the next pass (started by a DOMAINS_FILE edit) reads it, keeps it
      // aside and adopts the certificate back from live/.
      const recordDir = path.join(env.certDir, 'certs', 'w1.demo.test');
      await writeFile(path.join(recordDir, 'staging.json'), 'garbage');
      await appendFile(file, '# a pass, please\n');
      await until('the corrupt record kept aside', async () =>
        (await readdir(recordDir)).find((f) => f.startsWith('staging.json.corrupt-')),
      );
      await until('the record healed', async () => {
        const text = await readFile(path.join(recordDir, 'staging.json'), 'utf8').catch(() => '');
        return text.startsWith('{') || undefined;
      });

      // The whole live/ entry removed: restored from the store, same certificate.
      await rm(path.join(env.certDir, 'live', 'w1.demo.test'));
      assert.equal(await until('w1 restored', () => serial('w1.demo.test')), first);

      // One file deleted through the link: a complete version comes back.
      await rm(path.join(env.certDir, 'live', 'w1.demo.test', 'privkey.pem'));
      await until('privkey restored', () =>
        stat(path.join(env.certDir, 'live', 'w1.demo.test', 'privkey.pem')).then(() => true),
      );

      // DOMAINS_FILE edited: w2 added and w1 dropped, without a restart.
      await writeFile(file, 'w2.demo.test\n');
      await until('w2 issued', () => staged('w2.demo.test'));
      const status = (await runSidecar(['status'], vars)).stdout;
      assert.doesNotMatch(status, /w1\.demo\.test/, 'w1 is no longer managed');
    } finally {
      daemon.kill('SIGTERM');
    }
    const r = await done;
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.ok(r.logs.some((l) => l.message === 'live/ is incomplete; treating it as missing'));
    assert.ok(
      r.logs.some(
        (l) =>
          l.message === 'corrupt record in the state' &&
          (l as { record?: unknown }).record === 'certs/w1.demo.test/staging.json',
      ),
    );
  });
});
