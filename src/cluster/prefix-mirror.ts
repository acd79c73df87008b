import type { IKeyValue, Namespace, Watcher } from 'etcd3';
import { errorMessage } from '../domain/errors.js';
import type { Logger } from '../util/log.js';
import type { CoordSealer } from './sealed-coord.js';

/** One key under the mirrored prefix: the key without the prefix, and its opened value. */
export interface MirrorEntry {
  readonly key: string;
  readonly value: string;
  readonly revision: number;
}

export interface PrefixMirrorOptions {
  readonly namespace: Namespace;
  readonly prefix: string;
  /** Opens every value; one that does not open is logged and skipped (never handed on). */
  readonly sealer: CoordSealer;
  readonly log: Logger;
  /** Full resync period, besides the watch. Default 10 s. */
  readonly resyncMs?: number | undefined;
  /** The user's own log lines. */
  readonly messages: {
    /** A handler failed (it runs again at the next event or resync). */
    readonly failed: string;
    /** The watch broke (it is opened again). */
    readonly watchFailed: string;
    /** The watch could not be opened yet (it is tried again). */
    readonly cannotWatch: string;
  };
  readonly onPut: (entry: MirrorEntry) => Promise<void>;
  readonly onDelete?: (key: string) => Promise<void>;
  /** Everything under the prefix: at start, on every watch (re)connect and every `resyncMs`. */
  readonly onResync: (entries: readonly MirrorEntry[]) => Promise<void>;
}

/** Pause before a broken or refused watch is opened again. */
const REWATCH_MS = 1000;

/**
 * The watch-and-resync scaffold of every replica-side follower of an etcd
 * prefix (challenge tokens, live/ pointers): a watch for prompt changes, and
 * a full listing at start, on every watch reconnect and every `resyncMs`, so
 * a missed event or an etcd outage heals itself. Handlers run one at a time,
 * in order; one that fails is logged and left to the next event or resync.
 * Values are opened with the cluster key first: a put whose value is not
 * sealed for its key is refused (logged once) and left out of the listing,
 * as if the key did not exist.
 */
export class PrefixMirror {
  private watcher?: Watcher;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly opts: PrefixMirrorOptions) {}

  /** Resolves after the first full listing was handled. */
  async start(): Promise<void> {
    this.timer = setInterval(() => this.enqueue(() => this.resync()), this.opts.resyncMs ?? 10_000);
    void this.watch();
    this.enqueue(() => this.resync());
    await this.queue;
  }

  /** Stops watching and resyncing; resolves once the handler running now has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.watcher?.cancel().catch(() => undefined);
    await this.queue;
  }

  private enqueue(fn: () => Promise<void>): void {
    this.queue = this.queue.then(fn).catch((err: unknown) => {
      this.opts.log.warn(this.opts.messages.failed, { error: errorMessage(err) });
    });
  }

  private async watch(): Promise<void> {
    const { namespace, prefix, messages, log } = this.opts;
    const again = () => {
      if (!this.stopped) setTimeout(() => void this.watch(), REWATCH_MS);
    };
    try {
      const watcher = await namespace.watch().prefix(prefix).create();
      this.watcher = watcher;
      watcher.on('put', (kv) => {
        const e = this.toEntry(kv);
        if (e) this.enqueue(() => this.opts.onPut(e));
      });
      watcher.on('delete', (kv) => {
        const { onDelete } = this.opts;
        const key = kv.key.toString().slice(prefix.length);
        if (onDelete) this.enqueue(() => onDelete(key));
      });
      // A reconnect may have missed events: list everything again.
      watcher.on('connected', () => this.enqueue(() => this.resync()));
      watcher.on('error', (err) => {
        log.warn(messages.watchFailed, { error: errorMessage(err) });
        again();
      });
    } catch (err) {
      log.debug(messages.cannotWatch, { error: errorMessage(err) });
      again();
    }
  }

  private async resync(): Promise<void> {
    if (this.stopped) return;
    const res = await this.opts.namespace.getAll().prefix(this.opts.prefix).exec();
    const entries: MirrorEntry[] = [];
    for (const kv of res.kvs) {
      const e = this.toEntry(kv);
      if (e) entries.push(e);
    }
    await this.opts.onResync(entries);
  }

  /** The entry, if its value opens for its full key; undefined (logged) otherwise. */
  private toEntry(kv: IKeyValue): MirrorEntry | undefined {
    const { prefix, sealer, log } = this.opts;
    const rel = kv.key.toString().slice(prefix.length);
    const revision = Number(kv.mod_revision);
    const value = sealer.openOrRefuse(prefix + rel, kv.value, revision, log);
    return value === undefined ? undefined : { key: rel, value, revision };
  }
}
