import { sweepTempFiles, tempName } from '../store/atomic.js';
import { promises as fs, readFile as readFileCb } from 'node:fs';
import { promisify } from 'node:util';
import { join, resolve } from 'node:path';
import { SidecarError, errorMessage } from '../domain/errors.js';
import { isValidCertName } from '../domain/hostnames.js';
import type { LivePaths } from '../domain/status.js';
import type { CertBundle } from '../domain/types.js';
import { ensureDir, fsyncDir, writeFileAtomic } from '../store/atomic.js';
import { KEPT_MAX_AGE_MS } from '../store/fs-watch.js';
import { pooledBundle } from '../util/pem-pool.js';
import { monotonicMs } from '../util/monotonic.js';

const VERSION = /^[0-9]+$/;
/** Cheaper in CPU than `fs.promises.readFile` on Node 20 (see store/fs-store.ts). */
const readFileFast = promisify(readFileCb);
/** Versions kept per name in archive/: the live one and the one before it. */
const KEEP_VERSIONS = 2;
const DIR_MODE = 0o700;

const FILES = {
  cert: { file: 'cert.pem', mode: 0o644 },
  chain: { file: 'chain.pem', mode: 0o644 },
  fullchain: { file: 'fullchain.pem', mode: 0o644 },
  privkey: { file: 'privkey.pem', mode: 0o600 },
} as const;
type Part = keyof typeof FILES;
const PARTS = Object.keys(FILES) as Part[];

export type { LivePaths } from '../domain/status.js';

/** What LiveDir needs of a watch on live/ (deploy/live-watch.ts `LiveWatch`). */
export interface LiveFeed {
  /** Moves whenever live/<name> may have changed; undefined while `name` is not watched. */
  stamp(name: string): number | undefined;
}

/**
 * The certificates nginx serves, certbot-style:
 * `<LIVE_DIR>/live/<name>/{cert,chain,fullchain,privkey}.pem` (LIVE_DIR: STATE_DIR unless set apart).
 *
 * Local to this machine on purpose (in cluster mode each replica
 * materializes its own), and separate from CertStore, whose keys are not
 * files. nginx must never see a half-written file or a key that does not
 * match its certificate, so `live/<name>` is a relative symlink to a
 * complete, fsynced `archive/<name>/<version>/` and a new version is
 * published by renaming a new symlink over it: one atomic step for all
 * four files (Kubernetes swaps its `..data` link for configmap volumes the
 * same way). The link is relative so it resolves wherever the volume is
 * mounted. nginx's master runs as root, so 0600 keys in 0700 directories
 * are readable to it.
 *
 * Writes of one name must not run concurrently (the reconciler holds that
 * certificate's lock); concurrent writes do not corrupt a version, but the
 * last rename wins regardless of version order.
 */
export class LiveDir {
  readonly root: string;
  /** Tells when live/<name> may have changed (deploy/live-watch.ts); the daemon sets it. */
  private feed: LiveFeed | undefined;
  /** Bundles read while `feed` vouched for them, by name, with the stamp they were read under. */
  private readonly keptBundles = new Map<
    string,
    {
      readonly stamp: number;
      readonly at: number;
      readonly bundle: Promise<CertBundle | undefined>;
    }
  >();

  constructor(root: string) {
    this.root = resolve(root);
  }

  /**
   * With a feed (the daemon's watch on live/), `read(name, { kept: true })`
   * serves a bundle read before for as long as the feed's stamp of `name`
   * has not moved, so an idle pass reads nothing of live/; without one
   * (undefined), every read goes to the disk.
   */
  follow(feed: LiveFeed | undefined): void {
    this.feed = feed;
    this.keptBundles.clear();
  }

  /**
   * After a crash: removes temp links and files killed writers left, and
   * version directories a killed write never completed (never the one
   * live/<name> points at). Call at startup.
   */
  async sweep(): Promise<string[]> {
    const removed = [
      ...(await sweepTempFiles(join(this.root, 'live'))),
      ...(await sweepTempFiles(join(this.root, 'archive'))),
    ];
    const archiveRoot = join(this.root, 'archive');
    const names = await fs.readdir(archiveRoot).catch(() => [] as string[]);
    for (const name of names) {
      const target = await fs
        .readlink(join(this.root, 'live', name))
        .then((t) => t.split('/').pop())
        .catch(() => undefined);
      const versions = await fs.readdir(join(archiveRoot, name)).catch(() => [] as string[]);
      for (const v of versions) {
        if (v === target) continue;
        const dir = join(archiveRoot, name, v);
        const present = await Promise.all(
          PARTS.map((p) =>
            fs.stat(join(dir, FILES[p].file)).then(
              () => true,
              () => false,
            ),
          ),
        );
        if (present.includes(false)) {
          await fs.rm(dir, { recursive: true, force: true });
          removed.push(dir);
        }
      }
    }
    return removed;
  }

  /** Absolute paths nginx is configured with (through the link). */
  path(name: string): LivePaths {
    const dir = join(this.root, 'live', checkName(name));
    return {
      dir,
      cert: join(dir, FILES.cert.file),
      chain: join(dir, FILES.chain.file),
      fullchain: join(dir, FILES.fullchain.file),
      privkey: join(dir, FILES.privkey.file),
    };
  }

  async write(name: string, bundle: CertBundle): Promise<void> {
    checkName(name);
    this.keptBundles.delete(name);
    const liveDir = join(this.root, 'live');
    const livePath = join(liveDir, name);
    const archive = join(this.root, 'archive', name);
    await io(`write live/${name}`, async () => {
      await ensureDir(liveDir, DIR_MODE);
      await ensureDir(archive, DIR_MODE);

      // A real directory left by another tool cannot be replaced by a link
      // in one step (rename refuses to put a non-directory over a
      // directory). Keep it as the previous version; live/<name> is then
      // missing until the link below lands, which beats mixing files in it.
      const current = await fs.lstat(livePath).catch(ignoreMissing);
      if (current?.isDirectory()) {
        await fs.rename(livePath, join(archive, String(await nextVersion(archive))));
      }

      const version = await claimVersion(archive);
      const versionDir = join(archive, version);
      // The four files at once, each complete or absent (sweep() removes a
      // version that lacks one); one fsync makes their names durable.
      await Promise.all(
        PARTS.map((part) => {
          const { file, mode } = FILES[part];
          return writeFileAtomic(join(versionDir, file), bundle[part], { mode, syncDir: false });
        }),
      );
      await fsyncDir(versionDir);
      await fsyncDir(archive); // the version directory itself is durable

      const tmpLink = join(liveDir, tempName(name));
      await fs.symlink(join('..', 'archive', name, version), tmpLink);
      try {
        await fs.rename(tmpLink, livePath);
      } catch (err) {
        await fs.rm(tmpLink, { force: true });
        throw err;
      }
      await fsyncDir(liveDir);

      await prune(archive, version);
    });
    // A read that raced the write may hold the old version (the watch says so too, later).
    this.keptBundles.delete(name);
  }

  /**
   * The bundle nginx would load now, or undefined if there is none. The link
   * is resolved once and all four files are read from that version, so a
   * concurrent write() cannot hand back a cert from one version and a key
   * from another.
   *
   * `kept`: the bundle read before may be served while the feed (`follow`)
   * says nothing changed since (the reconciler's gather, which runs after
   * the pass let queued changes arrive); otherwise it is read from disk.
   */
  async read(name: string, opts: { kept?: boolean } = {}): Promise<CertBundle | undefined> {
    const stamp = opts.kept ? this.feed?.stamp(checkName(name)) : undefined;
    if (stamp === undefined) return this.readNow(name);
    const hit = this.keptBundles.get(name);
    const now = monotonicMs();
    // At most KEPT_MAX_AGE_MS: the bound on a change whose event was dropped.
    if (hit?.stamp === stamp && now - hit.at < KEPT_MAX_AGE_MS) return hit.bundle;
    // The stamp was taken before the read: a change during it shows as a newer stamp.
    const entry = { stamp, at: now, bundle: this.readNow(name) };
    this.keptBundles.set(name, entry);
    entry.bundle.catch(() => {
      if (this.keptBundles.get(name) === entry) this.keptBundles.delete(name);
    });
    return entry.bundle;
  }

  /** The bundle kept for `name` while the feed's stamp has not moved (LiveTarget.kept); never reads. */
  kept(name: string): object | undefined {
    const hit = this.keptBundles.get(name);
    if (!hit || !this.feed) return undefined;
    if (hit.stamp !== this.feed.stamp(name)) return undefined;
    return monotonicMs() - hit.at < KEPT_MAX_AGE_MS ? hit.bundle : undefined;
  }

  private async readNow(name: string): Promise<CertBundle | undefined> {
    const livePath = this.path(name).dir;
    return io(`read live/${name}`, async () => {
      // A version can be pruned between realpath and the reads (two more
      // writes happened meanwhile): start again from the new link.
      for (let attempt = 1; ; attempt++) {
        const dir = await fs.realpath(livePath).catch(ignoreMissing);
        if (dir === undefined) return undefined;
        try {
          const part = (p: Part) => readFileFast(join(dir, FILES[p].file), 'utf8');
          const [cert, chain, fullchain, privkey] = await Promise.all([
            part('cert'),
            part('chain'),
            part('fullchain'),
            part('privkey'),
          ]);
          // The same strings as the store's record of it (util/pem-pool.ts).
          return pooledBundle({ cert, chain, fullchain, privkey });
        } catch (err) {
          if (!isCode(err, 'ENOENT') || attempt >= 5) throw err;
        }
      }
    });
  }

  /** Removes live/<name> and its archive; a no-op if there is none. */
  async remove(name: string): Promise<void> {
    const livePath = this.path(name).dir;
    this.keptBundles.delete(name);
    await io(`remove live/${name}`, async () => {
      // The link first, so nothing points into a half-deleted archive.
      await fs.rm(livePath, { recursive: true, force: true });
      await fs.rm(join(this.root, 'archive', name), { recursive: true, force: true });
    });
    this.keptBundles.delete(name);
  }
}

/** Untrusted (it may come from a label): checked before it is ever joined into a path. */
function checkName(name: string): string {
  if (!isValidCertName(name)) {
    throw new SidecarError('CERT_NAME_INVALID', `invalid certificate name ${JSON.stringify(name)}`);
  }
  return name;
}

async function versions(archive: string): Promise<number[]> {
  const names = await fs.readdir(archive);
  return names
    .filter((n) => VERSION.test(n))
    .map(Number)
    .sort((a, b) => a - b);
}

async function nextVersion(archive: string): Promise<number> {
  return ((await versions(archive)).at(-1) ?? 0) + 1;
}

/** Creates the next version directory; mkdir without -p is the claim, so two writers never share one. */
async function claimVersion(archive: string): Promise<string> {
  for (let v = await nextVersion(archive); ; v++) {
    try {
      await fs.mkdir(join(archive, String(v)), { mode: DIR_MODE });
      return String(v);
    } catch (err) {
      if (!isCode(err, 'EEXIST')) throw err;
    }
  }
}

/** Deletes all but the newest KEEP_VERSIONS, never the one just made live. */
async function prune(archive: string, live: string): Promise<void> {
  const all = await versions(archive);
  for (const v of all.slice(0, -KEEP_VERSIONS)) {
    if (String(v) !== live) await fs.rm(join(archive, String(v)), { recursive: true, force: true });
  }
}

function ignoreMissing(err: unknown): undefined {
  if (isCode(err, 'ENOENT')) return undefined;
  throw err;
}

function isCode(err: unknown, ...codes: string[]): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && codes.includes(code);
}

/** Filesystem failures carry a code like every other failure (there is no deploy-specific one yet). */
async function io<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SidecarError) throw err;
    throw new SidecarError('STORE_IO', `${what}: ${errorMessage(err)}`, { cause: err });
  }
}
