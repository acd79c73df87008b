import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Marker in the name of every temp file `writeFileAtomic` creates; readers skip these. */
export const TEMP_MARKER = '.tmp-';

/**
 * `.<base>.tmp-<pid>-<random>`: the writer's pid in the name lets a later
 * start remove what a killed writer left (see `sweepTempFiles`).
 */
export function tempName(base: string): string {
  return `.${base}${TEMP_MARKER}${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** True when `name` is a temp file whose writer (on this host) is gone. */
export function isOrphanTemp(name: string): boolean {
  const m = /\.tmp-(\d+)-[0-9a-f]+$/.exec(name);
  if (!m) return false;
  const pid = Number(m[1]);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Removes temp files and links that killed writers left below `dir`
 * (`kill -9` between write and rename). A temp file of a live writer is
 * left alone. Returns what was removed.
 */
export async function sweepTempFiles(dir: string): Promise<string[]> {
  const removed: string[] = [];
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return removed;
    throw err;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (isOrphanTemp(e.name)) {
      await fs.rm(p, { recursive: true, force: true });
      removed.push(p);
    } else if (e.isDirectory()) {
      removed.push(...(await sweepTempFiles(p)));
    }
  }
  return removed;
}

/**
 * Replaces `path` so that a reader (nginx, another process) sees either the
 * old content or the new, never a mix or an empty file: write a temp file in
 * the same directory (rename is only atomic within one filesystem), fsync it,
 * rename it over the target, fsync the directory so the rename itself
 * survives a crash. This is certmagic's internal/atomicfile recipe.
 *
 * The file is created with `mode` (default 0o644), then chmod'ed to exactly
 * `mode` so the umask cannot widen or narrow it; a secret (0o600) is
 * therefore never readable by others, not even between open and write.
 * The parent directory must exist; nothing but the temp file is created, and
 * the temp file is removed again if anything fails.
 *
 * `syncDir: false` leaves the directory fsync to the caller: several files
 * written into one directory then cost one directory fsync, not one each.
 * `durable: false` skips both fsyncs (still atomic for readers): for files
 * worthless after a crash, such as an HTTP-01 token.
 */
export async function writeFileAtomic(
  path: string,
  data: Buffer | string,
  opts: { mode?: number; syncDir?: boolean; durable?: boolean } = {},
): Promise<void> {
  const mode = opts.mode ?? 0o644;
  const dir = dirname(path);
  const tmp = join(dir, tempName(basename(path)));
  // 'wx': fail rather than follow a symlink or reuse a file someone planted.
  const fh = await fs.open(tmp, 'wx', mode);
  try {
    try {
      await fh.chmod(mode);
      await fh.writeFile(data);
      if (opts.durable !== false) await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, path);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  if (opts.syncDir !== false && opts.durable !== false) await fsyncDir(dir);
}

/** Makes a directory's entries (creations, renames, unlinks) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * `mkdir -p` with `mode` for every directory it creates (less the umask).
 * An existing directory keeps its mode: the operator may have chosen it on
 * purpose (a mounted volume, a group that must read it), and silently
 * tightening or loosening someone else's directory is worse than leaving it.
 */
export async function ensureDir(path: string, mode = 0o700): Promise<void> {
  await fs.mkdir(path, { recursive: true, mode });
}
