import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { LiveDir } from '../../src/deploy/live-dir.js';
import { systemClock } from '../../src/lifecycle/clock.js';
import { isOrphanTemp, sweepTempFiles, tempName } from '../../src/store/atomic.js';
import { FsCertStore } from '../../src/store/fs-store.js';

/** The pid of a process that has exited (so certainly not alive now). */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((r) => child.on('exit', r));
  return child.pid as number;
}

describe('crash recovery: what a kill -9 leaves behind', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'crash-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('names temp files after the writer, so only a dead writer’s are orphans', async () => {
    const dead = await deadPid();
    assert.equal(isOrphanTemp(`.cert.pem.tmp-${dead}-abcdef`), true);
    assert.equal(isOrphanTemp(tempName('cert.pem')), false, 'our own');
    assert.equal(isOrphanTemp(`.cert.pem.tmp-1-abcdef`), false, 'pid 1 is alive');
    assert.equal(isOrphanTemp('cert.pem'), false);
  });

  it('sweeps orphaned temp files at any depth and leaves the rest', async () => {
    const dead = await deadPid();
    await mkdir(path.join(dir, 'certs', 'a'), { recursive: true });
    const orphan = path.join(dir, 'certs', 'a', `.staging.json.tmp-${dead}-0a0b0c`);
    const live = path.join(dir, 'certs', 'a', tempName('production.json'));
    await writeFile(orphan, 'half');
    await writeFile(live, 'being written');
    await writeFile(path.join(dir, 'certs', 'a', 'staging.json'), '{}');
    assert.deepEqual(await sweepTempFiles(dir), [orphan]);
    assert.deepEqual(
      (await readdir(path.join(dir, 'certs', 'a'))).sort(),
      [path.basename(live), 'staging.json'].sort(),
    );
  });

  it('breaks a lock whose holder on this host is dead at once, without waiting for it to go stale', async () => {
    const store = new FsCertStore(dir, { lockStaleMs: 60_000, lockPollMs: 20 });
    await mkdir(path.join(dir, '.locks'), { recursive: true });
    await writeFile(
      path.join(dir, '.locks', 'cert-a.lock'),
      JSON.stringify({
        pid: await deadPid(),
        hostname: hostname(),
        created: new Date().toISOString(),
      }),
    );
    const t0 = Date.now();
    await store.lock('cert-a', { timeoutMs: 2000 });
    assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`);
    await store.unlock('cert-a');
  });

  it('still waits for a lock held by a live process', async () => {
    const store = new FsCertStore(dir, { lockStaleMs: 60_000, lockPollMs: 20 });
    await mkdir(path.join(dir, '.locks'), { recursive: true });
    await writeFile(
      path.join(dir, '.locks', 'cert-a.lock'),
      JSON.stringify({ pid: 1, hostname: hostname(), created: new Date().toISOString() }),
    );
    await assert.rejects(store.lock('cert-a', { timeoutMs: 300 }), { code: 'LOCK_TIMEOUT' });
  });

  it('removes a half-written version directory and a dead writer’s temp link, keeping what live/ points at', async () => {
    const liveDir = new LiveDir(dir);
    const bundle = await new SelfSignedIssuer(systemClock).issue(
      { name: 'a.example.com', domains: ['a.example.com'], source: 't' },
      'ecdsa-p256',
    );
    await liveDir.write('a.example.com', bundle);
    const archive = path.join(dir, 'archive', 'a.example.com');
    const [current] = await readdir(archive);
    // A write killed after creating its version directory and one file:
    await mkdir(path.join(archive, '999'));
    await writeFile(path.join(archive, '999', 'cert.pem'), bundle.cert);
    // ...and one killed between making its temp link and renaming it:
    const dead = await deadPid();
    await symlink(
      `../archive/a.example.com/${current}`,
      path.join(dir, 'live', `.a.example.com.tmp-${dead}-0f0f0f`),
    );
    const removed = await liveDir.sweep();
    assert.equal(removed.length, 2, removed.join(', '));
    assert.deepEqual(await readdir(archive), [current]);
    assert.deepEqual(await readdir(path.join(dir, 'live')), ['a.example.com']);
    assert.deepEqual(await liveDir.read('a.example.com'), bundle);
  });
});
