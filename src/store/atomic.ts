import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Marker in the name of every temp file `writeFileAtomic` creates; readers skip these. */
export const TEMP_MARKER = '.tmp-';

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
 */
export async function writeFileAtomic(
  path: string,
  data: Buffer | string,
  opts: { mode?: number } = {},
): Promise<void> {
  const mode = opts.mode ?? 0o644;
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}${TEMP_MARKER}${randomBytes(6).toString('hex')}`);
  // 'wx': fail rather than follow a symlink or reuse a file someone planted.
  const fh = await fs.open(tmp, 'wx', mode);
  try {
    try {
      await fh.chmod(mode);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, path);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
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
