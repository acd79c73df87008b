/**
 * Which keys of a file store may have changed, told by the OS (inotify on
 * Linux) rather than by reading: what lets the daemon keep the records it
 * read across passes (pass-cache.ts) and read nothing in an idle pass.
 *
 * One watch per directory that holds a key read: the root, `certs/`, each
 * `certs/<name>/`, `acme/<host>/`... (about one per certificate). Any event
 * in a directory (a file written in place, renamed over, created, deleted,
 * its attributes changed) bumps that directory's generation, which every
 * key in it was read under; an event naming a watched subdirectory (moved,
 * deleted, replaced) drops that subdirectory's watch and everything below
 * it, so a key read under a dropped watch is never vouched for again. A
 * key in a directory that does not exist yet is vouched for by the deepest
 * existing ancestor (its creation is an event there).
 *
 * It can only vouch where the OS sees every change: on a local filesystem.
 * A store on NFS or another shared filesystem is written by other hosts,
 * whose changes raise no event here, so `watchStore` refuses it and the
 * cache keeps records for one pass only, as before. A watch that fails
 * (the inotify limit) is simply not held: its keys are read every pass.
 *
 * The kernel can drop events (a full inotify queue), and libuv does not
 * pass its overflow event on to Node: no token outlives KEPT_MAX_AGE_MS,
 * so a change missed that way is read within that time.
 */
import { watch, statfsSync, type FSWatcher } from 'node:fs';
import { basename, join } from 'node:path';
import { monotonicMs } from '../util/monotonic.js';
import { TEMP_MARKER } from './atomic.js';

/**
 * How long a record or live/ bundle kept across passes may be served
 * without reading it again, whatever the watches say: the bound on a
 * change whose event the kernel dropped.
 */
export const KEPT_MAX_AGE_MS = 60 * 60 * 1000;

/** Valid until a change of the key it was taken for may have happened. */
export interface ChangeToken {
  valid(): boolean;
}

/** What pass-cache.ts needs from a change feed. */
export interface ChangeFeed {
  /** A token for `key`, taken before it is read; undefined: cannot vouch for it. */
  track(key: string): ChangeToken | undefined;
  /**
   * Lets the changes the OS has already queued reach the feed: until libuv
   * polled once more (inotify events are read in its poll phase).
   */
  settle(): Promise<void>;
  /** Watches held (for tests and the bench). */
  watchCount(): number;
  close(): void;
}

interface DirWatch {
  readonly rel: string;
  readonly watcher: FSWatcher;
  gen: number;
  dead: boolean;
  /**
   * Watched subdirectories, by entry name; made with the first (a
   * certificate's directory has none: an empty Map is about 200 bytes).
   */
  children: Map<string, DirWatch> | undefined;
}

/**
 * Filesystems whose changes all pass through this kernel (statfs f_type):
 * ext2/3/4, xfs, btrfs, tmpfs, overlayfs, zfs, f2fs, ramfs.
 */
const LOCAL_FS = new Set([
  0xef53, 0x58465342, 0x9123683e, 0x01021994, 0x794c7630, 0x2fc12fc1, 0xf2f52010, 0x858458f6,
]);

/** Is `root` on a filesystem whose every change this host's inotify sees? */
export function isLocalFilesystem(root: string): boolean {
  try {
    return LOCAL_FS.has(statfsSync(root).type);
  } catch {
    return false;
  }
}

/**
 * A change feed for the file store at `root`, or undefined when changes
 * there cannot all be seen (not a local filesystem, or not watchable).
 */
export function watchStore(
  root: string,
  opts: {
    onError?: (err: unknown) => void;
    assumeLocal?: boolean;
    /** Monotonic ms (tests); default monotonicMs (util/monotonic.ts). */
    now?: () => number;
    /** fs.watch (tests make it fail). */
    watch?: (path: string, opts: { persistent: boolean }) => FSWatcher;
  } = {},
): ChangeFeed | undefined {
  const now = opts.now ?? monotonicMs;
  if (!opts.assumeLocal && !isLocalFilesystem(root)) return undefined;
  const dirs = new Map<string, DirWatch>();
  const feedState = { closed: false, now };

  const drop = (d: DirWatch): void => {
    if (d.dead) return;
    d.dead = true;
    d.watcher.close();
    dirs.delete(d.rel);
    const children = d.children;
    d.children = undefined;
    for (const c of children?.values() ?? []) drop(c);
  };

  /** 'missing': the directory does not exist (yet); undefined: it cannot be watched. */
  const open = (
    rel: string,
    parent: DirWatch | undefined,
    name: string,
  ): DirWatch | 'missing' | undefined => {
    const abs = rel === '' ? root : join(root, ...rel.split('/'));
    let watcher: FSWatcher;
    try {
      watcher = (opts.watch ?? watch)(abs, { persistent: false });
    } catch (err) {
      // Missing: its creation is an event in the ancestor, which vouches.
      if (isCode(err, 'ENOENT', 'ENOTDIR')) return 'missing';
      // Out of watches, or not allowed: nothing vouches for what is in it
      // (the ancestor's watch does not see inside), so it is read every pass.
      opts.onError?.(err);
      return undefined;
    }
    const d: DirWatch = { rel, watcher, gen: 0, dead: false, children: undefined };
    const base = rel.split('/').pop() ?? '';
    watcher.on('change', (_event, file) => {
      d.gen++;
      const entry = typeof file === 'string' ? file : file?.toString('utf8');
      if (entry === undefined || entry === null) {
        // Which entry was not said: nothing below can be vouched for.
        const children = d.children;
        d.children = undefined;
        for (const c of children?.values() ?? []) drop(c);
        return;
      }
      // The directory itself moved or went (reported under its own name;
      // for the root, its own base name: a file of that name in it is taken
      // the same way, which only costs reads).
      if (entry === (rel === '' ? basename(root) : base)) {
        drop(d);
        return;
      }
      if (entry.includes(TEMP_MARKER)) return;
      const child = d.children?.get(entry);
      if (child) {
        d.children?.delete(entry);
        drop(child);
      }
    });
    watcher.on('error', (err) => {
      drop(d);
      opts.onError?.(err);
    });
    dirs.set(rel, d);
    if (parent) (parent.children ??= new Map()).set(name, d);
    return d;
  };

  /** The watch of `rel` and every ancestor, as deep as they exist. */
  const deepest = (rel: string): DirWatch | undefined => {
    const parts = rel === '' ? [] : rel.split('/');
    const top = dirs.get('') ?? open('', undefined, '');
    if (top === undefined || top === 'missing') return undefined;
    let cur = top;
    let path = '';
    for (const part of parts) {
      path = path === '' ? part : `${path}/${part}`;
      const next = dirs.get(path) ?? open(path, cur, part);
      if (next === 'missing') return cur;
      if (next === undefined) return undefined;
      cur = next;
    }
    return cur;
  };

  return {
    track(key) {
      if (feedState.closed) return undefined;
      const slash = key.lastIndexOf('/');
      const d = deepest(slash < 0 ? '' : key.slice(0, slash));
      if (!d) return undefined;
      return new DirToken(d, feedState);
    },
    settle: afterNextPoll,
    watchCount: () => dirs.size,
    close() {
      feedState.closed = true;
      for (const d of [...dirs.values()]) drop(d);
    },
  };
}

/**
 * A token for a key of directory `d`: valid while no event came in `d`
 * since it was taken, its watch and the feed are open, and it is younger
 * than KEPT_MAX_AGE_MS. An object with its state in fields and `valid` on
 * the prototype, not a closure: the daemon keeps one per record it keeps
 * (five per certificate), and a closure with its context cost about 600
 * bytes more each certificate (heap snapshot, 300 certificates).
 */
class DirToken implements ChangeToken {
  private readonly gen: number;
  private readonly takenAt: number;

  constructor(
    private readonly d: DirWatch,
    private readonly feed: { readonly closed: boolean; readonly now: () => number },
  ) {
    this.gen = d.gen;
    this.takenAt = feed.now();
  }

  valid(): boolean {
    const { d } = this;
    return (
      !d.dead &&
      d.gen === this.gen &&
      !this.feed.closed &&
      this.feed.now() - this.takenAt < KEPT_MAX_AGE_MS
    );
  }
}

/**
 * Resolves after libuv has polled for I/O once more (and so read the
 * inotify events the kernel had queued when this was called). Two turns:
 * called from an I/O callback, the first check phase comes before the
 * next poll.
 */
export function afterNextPoll(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
}

function isCode(err: unknown, ...codes: string[]): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && codes.includes(code);
}
