/**
 * What nginx serves, watched with one OS watch per certificate.
 *
 * LiveDir's layout (see live-dir.ts): `live/<name>` is a link to
 * `archive/<name>/<version>/`, a new version is published by renaming a new
 * link over it. The changes that matter are therefore:
 * - an entry of live/ removed, replaced or added: one event on the live/
 *   directory (a link swap is one rename);
 * - a file of the version a link points at deleted or edited (`rm
 *   live/<name>/privkey.pem` goes through the link): one event on that
 *   version directory, or on the directory itself when it is removed.
 * So live/ is watched, and for each entry the one directory its link
 * resolves to, re-resolved when live/ reports that entry. Older versions,
 * archive/ and archive/<name>/ are not served and are not watched. A
 * recursive watcher (chokidar at depth 3 before) held about 11 watches per
 * certificate, one per file and directory of every kept version.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { isValidCertName } from '../domain/hostnames.js';
import { TEMP_MARKER } from '../store/atomic.js';

export interface LiveWatch {
  /** OS watches held: live/ and one per certificate whose link resolves. */
  watchCount(): number;
  /**
   * A number that changes whenever live/<name> may have changed (an event
   * on its entry or its version, its watch moved or lost), or undefined
   * while `name` has no watch: what lets LiveDir keep a bundle read across
   * passes (live-dir.ts `follow`).
   */
  stamp(name: string): number | undefined;
  /** Resolves when no entry is being re-resolved (for tests). */
  settled(): Promise<void>;
  close(): void;
}

interface Watched {
  readonly dir: string;
  /** dev:ino, so a version directory removed and made again under the same path is watched anew. */
  readonly inode: string;
  readonly watcher: FSWatcher;
}

/**
 * Starts watching `<liveRoot>/live` (which must exist) and the version each
 * entry points at; `onChange` gets a description of every change that is
 * not a temp file of an atomic write. Resolves once the initial watches are set.
 */
export async function watchLive(
  liveRoot: string,
  onChange: (why: string) => void,
  onError: (err: unknown) => void,
): Promise<LiveWatch> {
  const live = join(liveRoot, 'live');
  const versions = new Map<string, Watched>();
  const running = new Map<string, Promise<void>>();
  const again = new Set<string>();
  let closed = false;
  /** live/ itself is no longer watched: no stamp can be vouched for. */
  let blind = false;
  let tick = 0;
  const changedAt = new Map<string, number>();
  let allChangedAt = 0;
  const bump = (name: string) => changedAt.set(name, ++tick);

  const unwatch = (name: string) => {
    bump(name);
    versions.get(name)?.watcher.close();
    versions.delete(name);
  };

  /** Points the watch of `name` at the directory its link resolves to now, or drops it. */
  const resolveOne = async (name: string): Promise<void> => {
    const target = await resolveDir(join(live, name));
    const current = versions.get(name);
    if (current && target?.dir === current.dir && target.inode === current.inode) return;
    unwatch(name);
    if (!target || closed) return;
    let watcher: FSWatcher;
    try {
      watcher = watch(target.dir, (event, file) => {
        bump(name);
        if (file?.includes(TEMP_MARKER)) return;
        onChange(`${event} live/${name}/${file ?? ''}`);
        // Deleted or moved (a file, or the directory itself): the link may dangle now.
        if (event === 'rename') resync(name);
      });
    } catch (err) {
      // Gone since it was resolved: live/ or the pass will report it.
      if (!isCode(err, 'ENOENT', 'ENOTDIR')) onError(err);
      return;
    }
    watcher.on('error', (err) => {
      if (versions.get(name)?.watcher === watcher) unwatch(name);
      onError(err);
    });
    versions.set(name, { ...target, watcher });
    bump(name);
  };

  /** Re-resolves `name`; calls for one name never overlap, a call during one runs once after it. */
  const resync = (name: string): void => {
    if (closed) return;
    if (running.has(name)) {
      again.add(name);
      return;
    }
    const run = (async () => {
      try {
        do {
          again.delete(name);
          await resolveOne(name);
        } while (again.has(name) && !closed);
      } catch (err) {
        onError(err);
      } finally {
        running.delete(name);
      }
    })();
    running.set(name, run);
  };

  const resyncAll = async (): Promise<void> => {
    const names = await readdir(live).catch((err: unknown) => {
      onError(err);
      return [] as string[];
    });
    for (const name of new Set([...names, ...versions.keys()])) {
      if (isValidCertName(name)) resync(name);
    }
  };

  const settled = async (): Promise<void> => {
    while (running.size > 0) await Promise.all(running.values());
  };

  const liveWatcher = watch(live, (event, file) => {
    if (file === null) {
      // The name was not reported: resolve every entry again.
      allChangedAt = ++tick;
      onChange(`${event} live/`);
      void resyncAll();
      return;
    }
    if (file === basename(live)) {
      // live/ itself moved or went: this watch sees the old directory, if
      // any. Vouch for nothing from now on (every read goes to the disk).
      // A certificate named `live` is taken the same way, which only costs reads.
      blind = true;
      onChange(`${event} live/`);
      return;
    }
    if (file.includes(TEMP_MARKER)) return;
    bump(file);
    onChange(`${event} live/${file}`);
    // Not a name LiveDir writes: nothing of ours to watch behind it.
    if (isValidCertName(file)) resync(file);
  });
  liveWatcher.on('error', (err) => {
    blind = true;
    onError(err);
  });

  await resyncAll();
  await settled();

  return {
    watchCount: () => (closed ? 0 : 1 + versions.size),
    stamp: (name) =>
      closed || blind || !versions.has(name)
        ? undefined
        : Math.max(allChangedAt, changedAt.get(name) ?? 0),
    settled,
    close: () => {
      closed = true;
      liveWatcher.close();
      for (const name of [...versions.keys()]) unwatch(name);
    },
  };
}

async function resolveDir(path: string): Promise<{ dir: string; inode: string } | undefined> {
  try {
    const dir = await realpath(path);
    const st = await stat(dir);
    return st.isDirectory() ? { dir, inode: `${st.dev}:${st.ino}` } : undefined;
  } catch (err) {
    if (isCode(err, 'ENOENT', 'ENOTDIR', 'ELOOP')) return undefined;
    throw err;
  }
}

function isCode(err: unknown, ...codes: string[]): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && codes.includes(code);
}
