import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { errorCode } from '../../src/domain/errors.js';
import { writeFileAtomic } from '../../src/store/atomic.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { HOSTILE_KEYS, storeContract } from './store-contract.js';

const FAST_LOCKS = { lockPollMs: 20, lockStaleMs: 60_000 };

async function tempDir(): Promise<string> {
  return fs.mkdtemp(join(tmpdir(), 'fs-store-'));
}

/** Every path below `dir`, relative to it, sorted. */
async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(relative(dir, p));
      if (e.isDirectory()) await visit(p);
    }
  };
  await visit(dir);
  return out.sort();
}

async function modeOf(path: string): Promise<number> {
  return (await fs.stat(path)).mode & 0o777;
}

storeContract('FsCertStore', async () => {
  const dir = await tempDir();
  return {
    store: new FsCertStore(join(dir, 'store'), FAST_LOCKS),
    cleanup: () => fs.rm(dir, { recursive: true, force: true }),
  };
});

describe('FsCertStore on disk', () => {
  let dir: string;
  let root: string;
  let store: FsCertStore;

  beforeEach(async () => {
    dir = await tempDir();
    root = join(dir, 'store');
    store = new FsCertStore(root, FAST_LOCKS);
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('writes secrets 0600 and other values 0644, whatever the umask', async () => {
    const old = process.umask(0o077);
    try {
      await store.store('accounts/prod/key.pem', 'KEY', { secret: true });
      await store.store('accounts/prod/meta.json', '{}');
    } finally {
      process.umask(old);
    }
    assert.equal(await modeOf(join(root, 'accounts/prod/key.pem')), 0o600);
    assert.equal(await modeOf(join(root, 'accounts/prod/meta.json')), 0o644);
  });

  it('makes a value secret again when it is overwritten as a secret', async () => {
    await store.store('k', 'public');
    await store.store('k', 'secret', { secret: true });
    assert.equal(await modeOf(join(root, 'k')), 0o600);
  });

  it('creates the directories it needs 0700', async () => {
    await store.store('certs/example.com/cert.pem', 'x');
    assert.equal(await modeOf(root), 0o700);
    assert.equal(await modeOf(join(root, 'certs')), 0o700);
    assert.equal(await modeOf(join(root, 'certs/example.com')), 0o700);
  });

  it('leaves no temp files behind after many writes', async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => store.store(`certs/a/v${i % 3}`, `value ${i}`)),
    );
    assert.deepEqual(await walk(root), [
      'certs',
      'certs/a',
      'certs/a/v0',
      'certs/a/v1',
      'certs/a/v2',
    ]);
  });

  it('removes its temp file when a write fails', async () => {
    await fs.mkdir(join(root, 'certs/dir'), { recursive: true });
    // Renaming a file over a directory fails after the temp file was written.
    await assert.rejects(writeFileAtomic(join(root, 'certs/dir'), 'x'));
    assert.deepEqual(await walk(join(root, 'certs')), ['dir']);
  });

  it('wraps filesystem failures in STORE_IO with the cause', async () => {
    await store.store('certs/a', 'x');
    // 'certs/a' is a file, so it cannot also be a directory.
    await assert.rejects(store.store('certs/a/b', 'y'), (err: unknown) => {
      assert.equal(errorCode(err), 'STORE_IO');
      assert.ok((err as Error).cause, 'cause kept');
      return true;
    });
  });

  it("does not list a crashed writer's leftover temp file", async () => {
    await store.store('certs/a.example/cert.pem', 'x');
    await fs.writeFile(join(root, 'certs/a.example/.cert.pem.tmp-0123456789ab'), 'half');
    assert.deepEqual(await store.list('certs/a.example'), ['cert.pem']);
    assert.equal((await store.load('certs/a.example/cert.pem'))?.toString(), 'x');
  });

  it('creates nothing anywhere for a hostile key', async () => {
    for (const [, key] of HOSTILE_KEYS) {
      await assert.rejects(store.store(key, 'x'));
      await assert.rejects(store.store(`certs/${key}`, 'x'));
      await assert.rejects(store.lock(key, { timeoutMs: 0 }));
    }
    // The root is one level below `dir`, so an escape would land in `dir`.
    assert.deepEqual(await walk(dir), []);
  });

  describe('lock files', () => {
    const lockFile = (name: string) => join(root, '.locks', `${name}.lock`);

    it('writes who holds the lock into the lock file, and removes it on unlock', async () => {
      await store.lock('certs/a');
      const meta = JSON.parse(await fs.readFile(lockFile('certs~a'), 'utf8')) as unknown;
      assert.deepEqual(Object.keys(meta as object).sort(), ['created', 'hostname', 'pid']);
      assert.equal((meta as { pid: number }).pid, process.pid);
      await store.unlock('certs/a');
      await assert.rejects(fs.stat(lockFile('certs~a')), { code: 'ENOENT' });
    });

    it("excludes another store instance on the same root (another process's view)", async () => {
      const other = new FsCertStore(root, FAST_LOCKS);
      await store.lock('a');
      try {
        await assert.rejects(other.lock('a', { timeoutMs: 200 }), { code: 'LOCK_TIMEOUT' });
      } finally {
        await store.unlock('a');
      }
      await other.lock('a', { timeoutMs: 1_000 });
      await other.unlock('a');
    });

    it('breaks a lock whose holder stopped refreshing it', async () => {
      const s = new FsCertStore(root, { lockPollMs: 20, lockStaleMs: 1_000 });
      await fs.mkdir(join(root, '.locks'), { recursive: true });
      await fs.writeFile(lockFile('a'), '{"pid":1,"hostname":"crashed","created":"x"}');
      const past = new Date(Date.now() - 5_000);
      await fs.utimes(lockFile('a'), past, past);
      await s.lock('a', { timeoutMs: 500 });
      const meta = JSON.parse(await fs.readFile(lockFile('a'), 'utf8')) as { pid: number };
      assert.equal(meta.pid, process.pid);
      await s.unlock('a');
      assert.deepEqual(await fs.readdir(join(root, '.locks')), []);
    });

    it('does not break a lock whose file is recent', async () => {
      await fs.mkdir(join(root, '.locks'), { recursive: true });
      await fs.writeFile(lockFile('a'), '{"pid":1,"hostname":"alive","created":"x"}');
      await assert.rejects(store.lock('a', { timeoutMs: 200 }), { code: 'LOCK_TIMEOUT' });
      assert.match(await fs.readFile(lockFile('a'), 'utf8'), /alive/);
    });

    it('keeps a held lock fresh so that waiters do not break it', async () => {
      const opts = { lockPollMs: 20, lockStaleMs: 500 };
      const holder = new FsCertStore(root, opts);
      const waiter = new FsCertStore(root, opts);
      await holder.lock('a');
      try {
        // Waits more than three stale periods: only the refresh saves the lock.
        await assert.rejects(waiter.lock('a', { timeoutMs: 1_600 }), { code: 'LOCK_TIMEOUT' });
      } finally {
        await holder.unlock('a');
      }
    });

    it('does not remove a lock it does not hold', async () => {
      const other = new FsCertStore(root, FAST_LOCKS);
      await other.lock('a');
      await store.unlock('a');
      await assert.rejects(store.lock('a', { timeoutMs: 100 }), { code: 'LOCK_TIMEOUT' });
      await other.unlock('a');
    });
  });
});
