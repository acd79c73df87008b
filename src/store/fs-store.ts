import { randomBytes } from 'node:crypto';
import { promises as fs, readFile as readFileCb } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { SidecarError, errorMessage } from '../domain/errors.js';
import { systemClock, type Clock } from '../lifecycle/clock.js';
import { ensureDir, fsyncDir, sweepTempFiles, writeFileAtomic } from './atomic.js';
import { asideKey } from './keys.js';
import { DEFAULT_LOCK_POLL_MS, DEFAULT_LOCK_TIMEOUT_MS, waitForLock } from './lock-wait.js';
import { assertStoreKey, type CertStore } from './store.js';

export interface FsCertStoreOptions {
  /** A lock file not refreshed for this long belongs to a dead holder. Default 60 s. */
  lockStaleMs?: number;
  /** How often a waiter looks at a held lock again. Default 200 ms. */
  lockPollMs?: number;
  /** Wall clock for lock staleness (file mtimes) and the lock files' `created`. */
  clock?: Clock;
}

export const DEFAULT_LOCK_STALE_MS = 60_000;
export { DEFAULT_LOCK_POLL_MS, DEFAULT_LOCK_TIMEOUT_MS };

/**
 * The callback readFile, promisified: on Node 20 it costs about two thirds
 * of the CPU of `fs.promises.readFile` for a small file (measured on the
 * bench machine), and an idle pass reads a few records per certificate.
 */
const readFileFast = promisify(readFileCb);

const DIR_MODE = 0o700;
const SECRET_MODE = 0o600;
const FILE_MODE = 0o644;

/**
 * Lock files live here. Keys can never start with '.' (assertStoreKey), so
 * this directory, like the `.<name>.tmp-*` files of writeFileAtomic, can
 * never collide with a key and is hidden from list() by the same rule.
 */
const LOCK_DIR = '.locks';

interface HeldLock {
  /** Kept open so the refresh touches our inode, whatever is at the path now. */
  readonly fh: FileHandle;
  readonly ino: number;
  readonly timer: NodeJS.Timeout;
}

/**
 * CertStore on a local (or shared) filesystem: key `a/b/c` is the file
 * `<root>/a/b/c`. Directories are 0700, secrets 0600, other values 0644;
 * every write is atomic (see writeFileAtomic).
 *
 * A key is a leaf value: a directory (a prefix of other keys) is not a key,
 * so load() of it is undefined, exists() false and delete() a no-op.
 *
 * Locking follows certmagic's FileStorage: the holder creates
 * `<root>/.locks/<name>.lock` with O_EXCL and keeps its mtime fresh; a
 * waiter polls and removes a lock whose mtime is older than `lockStaleMs`
 * (its holder crashed). Staleness compares the file's mtime with this
 * host's clock, so hosts sharing the directory need roughly synced clocks.
 */
export class FsCertStore implements CertStore {
  readonly root: string;
  private readonly lockStaleMs: number;
  private readonly lockPollMs: number;
  private readonly clock: Clock;
  /** Locks this instance holds, by name. */
  private readonly held = new Map<string, HeldLock>();

  constructor(root: string, opts: FsCertStoreOptions = {}) {
    this.root = resolve(root);
    this.lockStaleMs = opts.lockStaleMs ?? DEFAULT_LOCK_STALE_MS;
    this.lockPollMs = opts.lockPollMs ?? DEFAULT_LOCK_POLL_MS;
    this.clock = opts.clock ?? systemClock;
    if (!(this.lockStaleMs > 0) || !(this.lockPollMs > 0)) {
      throw new RangeError('lockStaleMs and lockPollMs must be positive');
    }
  }

  async store(key: string, value: Buffer | string, opts: { secret?: boolean } = {}): Promise<void> {
    const path = this.pathOf(key);
    await io(`store ${JSON.stringify(key)}`, async () => {
      await ensureDir(dirname(path), DIR_MODE);
      await writeFileAtomic(path, value, { mode: opts.secret ? SECRET_MODE : FILE_MODE });
    });
  }

  async load(key: string): Promise<Buffer | undefined> {
    const path = this.pathOf(key);
    try {
      return await readFileFast(path);
    } catch (err) {
      if (isCode(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) return undefined;
      throw ioError(`load ${JSON.stringify(key)}`, err);
    }
  }

  async exists(key: string): Promise<boolean> {
    const path = this.pathOf(key);
    try {
      return (await fs.stat(path)).isFile();
    } catch (err) {
      if (isCode(err, 'ENOENT', 'ENOTDIR')) return false;
      throw ioError(`exists ${JSON.stringify(key)}`, err);
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await fs.unlink(path);
    } catch (err) {
      // Missing: already deleted. EISDIR/EPERM: a prefix, which is not a key.
      if (isCode(err, 'ENOENT', 'ENOTDIR', 'EISDIR', 'EPERM')) return;
      throw ioError(`delete ${JSON.stringify(key)}`, err);
    }
  }

  /**
   * Renames `<file>` to `<file>.corrupt-<UTC time>` in the same directory.
   * link() then unlink() rather than rename(), so an aside copy of the same
   * second is never overwritten (link refuses an existing name).
   */
  async quarantine(key: string, at: Date): Promise<string | undefined> {
    const path = this.pathOf(key);
    return io(`keep aside ${JSON.stringify(key)}`, async () => {
      for (let n = 0; n < 100; n++) {
        const aside = asideKey(key, at, { n });
        try {
          await fs.link(path, this.pathOf(aside));
        } catch (err) {
          if (isCode(err, 'EEXIST')) continue;
          if (isCode(err, 'ENOENT', 'ENOTDIR')) return undefined;
          throw err;
        }
        await fs.unlink(path).catch((err: unknown) => {
          if (!isCode(err, 'ENOENT')) throw err;
        });
        await fsyncDir(dirname(path));
        return aside;
      }
      throw new Error('too many aside copies in one second');
    });
  }

  /** `prefix` '' lists the top level. */
  async list(prefix: string): Promise<string[]> {
    const dir = prefix === '' ? this.root : this.pathOf(prefix);
    try {
      const names = await fs.readdir(dir);
      // Dot names are never keys: temp files of writes (possibly left by a
      // crashed writer) and the lock directory.
      return names.filter((n) => !n.startsWith('.')).sort();
    } catch (err) {
      if (isCode(err, 'ENOENT', 'ENOTDIR')) return [];
      throw ioError(`list ${JSON.stringify(prefix)}`, err);
    }
  }

  /**
   * Waits until this process holds `name`, or throws LOCK_TIMEOUT after
   * `timeoutMs` (default 5 minutes). Not reentrant: a second lock() of a
   * held name waits for its unlock(), in this process as in any other.
   */
  async lock(name: string, opts: { timeoutMs?: number } = {}): Promise<void> {
    const path = this.lockPathOf(name);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    const startedAt = performance.now();
    await io(`lock ${JSON.stringify(name)}`, () => ensureDir(dirname(path), DIR_MODE));
    const got = await waitForLock(name, () => this.tryLock(name, path), {
      timeoutMs,
      pollMs: this.lockPollMs,
      startedAt,
    });
    // Only possible if our earlier lock on this name was broken as stale.
    const old = this.held.get(name);
    if (old) await release(old);
    this.held.set(name, got);
  }

  /** Takes the lock if it is free or its holder is gone; undefined while a live holder has it. */
  private async tryLock(name: string, path: string): Promise<HeldLock | undefined> {
    for (;;) {
      const got = await io(`lock ${JSON.stringify(name)}`, () => this.tryCreateLock(path));
      if (got) return got;
      const st = await fs.stat(path).catch((err: unknown) => {
        if (isCode(err, 'ENOENT')) return undefined; // just released: try again now
        throw ioError(`lock ${JSON.stringify(name)}`, err);
      });
      if (!st) continue;
      if (this.isStale(st.mtimeMs) || (await this.holderIsDead(path))) {
        await io(`break stale lock ${JSON.stringify(name)}`, () => this.breakStaleLock(path));
        continue;
      }
      return undefined;
    }
  }

  /** Releases a lock this instance holds; a no-op for any other name. */
  async unlock(name: string): Promise<void> {
    const path = this.lockPathOf(name);
    const h = this.held.get(name);
    // Never remove a lock we do not hold: it is someone else's.
    if (!h) return;
    this.held.delete(name);
    await release(h);
    try {
      // If our lock went stale and was broken, the file now at `path` is
      // another holder's: remove it only if it is still our inode.
      if ((await fs.stat(path)).ino === h.ino) await fs.unlink(path);
    } catch (err) {
      if (isCode(err, 'ENOENT')) return;
      throw ioError(`unlock ${JSON.stringify(name)}`, err);
    }
  }

  /** The only way a key becomes a path: validated first, then joined. */
  private pathOf(key: string): string {
    assertStoreKey(key);
    const path = join(this.root, ...key.split('/'));
    // Belt and braces: assertStoreKey already forbids every way out.
    if (!path.startsWith(this.root + sep)) {
      throw new SidecarError('STORE_KEY_INVALID', `store key ${JSON.stringify(key)} leaves root`);
    }
    return path;
  }

  /**
   * One flat file per name: '/' becomes '~', which no segment may contain,
   * so distinct names never share a file and lock `a` never needs a
   * directory where lock `a/b` would put one.
   */
  private lockPathOf(name: string): string {
    assertStoreKey(name);
    return join(this.root, LOCK_DIR, `${name.split('/').join('~')}.lock`);
  }

  /**
   * The lock was taken by a process on this host that no longer exists
   * (`kill -9`, OOM): no need to wait for its mtime to go stale. Another
   * host's holder is judged by the mtime alone.
   */
  private async holderIsDead(path: string): Promise<boolean> {
    try {
      const meta = JSON.parse(await fs.readFile(path, 'utf8')) as {
        pid?: unknown;
        hostname?: unknown;
      };
      if (meta.hostname !== hostname() || typeof meta.pid !== 'number') return false;
      if (meta.pid === process.pid) return false;
      process.kill(meta.pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }

  /** Removes temp files killed writers left in the store (call at startup). */
  async sweep(): Promise<string[]> {
    return sweepTempFiles(this.root);
  }

  private isStale(mtimeMs: number): boolean {
    return this.clock.now().getTime() - mtimeMs > this.lockStaleMs;
  }

  /** Creates the lock file, or returns undefined if someone holds it. */
  private async tryCreateLock(path: string): Promise<HeldLock | undefined> {
    let fh: FileHandle;
    try {
      fh = await fs.open(path, 'wx', SECRET_MODE);
    } catch (err) {
      if (isCode(err, 'EEXIST')) return undefined;
      throw err;
    }
    try {
      // For a human looking at a stuck lock; staleness uses only the mtime.
      const meta = {
        pid: process.pid,
        hostname: hostname(),
        created: this.clock.now().toISOString(),
      };
      await fh.writeFile(JSON.stringify(meta) + '\n');
      await fh.sync();
      const { ino } = await fh.stat();
      const timer = setInterval(() => {
        const now = this.clock.now();
        // A failed refresh is not fatal: the next one may succeed, and if
        // none does the lock goes stale, which is the crash path anyway.
        fh.utimes(now, now).catch(() => undefined);
      }, this.lockStaleMs / 3);
      // A held lock must not keep the process alive on its own.
      timer.unref();
      return { fh, ino, timer };
    } catch (err) {
      await fh.close().catch(() => undefined);
      await fs.rm(path, { force: true }).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Two waiters can see the same stale lock; if one removes it and takes a
   * fresh lock, a plain unlink by the other would delete that fresh lock
   * (certmagic accepts this race). Moving the file aside first and looking
   * at what we moved narrows it: a stale file is deleted, a fresh one is
   * linked back (link fails rather than overwrite if the name was retaken).
   */
  private async breakStaleLock(path: string): Promise<void> {
    const aside = `${path}.stale-${randomBytes(6).toString('hex')}`;
    try {
      await fs.rename(path, aside);
    } catch (err) {
      if (isCode(err, 'ENOENT')) return; // another waiter got there first
      throw err;
    }
    try {
      const st = await fs.stat(aside);
      const stale = this.isStale(st.mtimeMs) || (await this.holderIsDead(aside));
      if (!stale) await fs.link(aside, path).catch(() => undefined);
    } finally {
      await fs.rm(aside, { force: true });
    }
  }
}

async function release(h: HeldLock): Promise<void> {
  clearInterval(h.timer);
  await h.fh.close().catch(() => undefined);
}

function isCode(err: unknown, ...codes: string[]): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && codes.includes(code);
}

function ioError(what: string, err: unknown): SidecarError {
  if (err instanceof SidecarError) return err;
  return new SidecarError('STORE_IO', `${what}: ${errorMessage(err)}`, { cause: err });
}

async function io<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw ioError(what, err);
  }
}
