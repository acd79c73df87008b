import type { ChangeFeed, ChangeToken } from './fs-watch.js';
import type { CertStore } from './store.js';

/**
 * What is kept for one key. A class with every field set in the
 * constructor, so V8 keeps them in the object (five per certificate).
 */
class Entry {
  /**
   * The read; undefined once a reader parsed its bytes (`remember`) and the
   * pass ended: only the parsed value is kept then, and a plain load in a
   * later pass reads again.
   */
  read: Promise<Buffer | undefined> | undefined = undefined;
  /** The Buffer `read` resolved to, once it did (undefined: missing, or not yet). */
  bytes: Buffer | undefined = undefined;
  /** As what a reader parsed the bytes (`remember`); undefined: not parsed. */
  as: string | undefined = undefined;
  /** What they parsed into. */
  value: unknown = undefined;

  /** `token`: set when a change feed vouches for the key; the entry then outlives the pass. */
  constructor(readonly token: ChangeToken | undefined) {}
}

/**
 * A pass's view of the store: while a pass runs (`begin()` to `end()`),
 * every key is read from the store at most once and the same value (the
 * same Buffer) is handed to every later reader, so the reconciler's many
 * looks at one certificate's records (ARI refresh, gather, platform plan,
 * the status at the end) cost one read each. Outside a pass every load goes
 * to the store, as before.
 *
 * What keeps it right:
 * - our own writes (`store`, `delete`, `quarantine`) drop the key before
 *   and after they reach the store, so the next load reads what was written;
 * - taking a lock drops everything: the lock holder must re-read what it
 *   decided on (store.ts `Locker`), since another process may have written
 *   while it waited, and that re-read reaches the store;
 * - a failed load is not kept: the next one tries the store again.
 *
 * Across passes (the daemon, file store only): with a change feed
 * (`follow`, fs-watch.ts), a key the OS watch vouches for is kept after the
 * pass ends, and served until an event in its directory says it may have
 * changed, so an idle pass reads nothing. A record changed by hand or by
 * another process is an event there: the next load reads it again. Each
 * pass starts by letting the events already queued arrive (`begin`). Our
 * own writes drop the key as above; the entry is not written through (the
 * event of our own write, which arrives later, could not be told from
 * another process's write right after it), so the next pass reads it once.
 * etcd (cluster mode) has no feed here: its records are kept for one pass.
 *
 * One copy of a record is kept, not two (issue 15 goal 3): once a reader
 * has parsed a record into a read-only value (store/records.ts
 * `RecordReader`, which tells it with `remember` and asks `parsed` before
 * loading), the entry keeps that value and drops the bytes: about 7 KB
 * of malloc'd Buffers per certificate otherwise, held between passes. A
 * watched key's bytes go at once (held to the end of the pass, they left
 * the daemon with 1000 certificates at 96 MB instead of 91: malloc's
 * arena fragments); a plain load of it then reads the store again (a new
 * entry, so a new identity for `kept`), which the watch vouches is the
 * same unless an event ends the entry. Without a watch (etcd) the bytes
 * stay to the end of the pass, and a plain load in the pass gets them: one
 * version per pass, whoever asks. The reader never needs the bytes again
 * while they are current.
 *
 * `reads` counts the loads that reached the store (for the pass metrics).
 */
export class PassReadCache implements CertStore {
  /** Loads that reached the store since this object was made. */
  reads = 0;
  private readonly cache = new Map<string, Entry>();
  private inPass = false;
  private feed: ChangeFeed | undefined;

  constructor(readonly inner: CertStore) {}

  /**
   * From now on, keys `feed` vouches for are kept across passes (until
   * `unfollow`). Only for a store whose every change `feed` sees.
   */
  follow(feed: ChangeFeed): void {
    this.unfollow();
    this.feed = feed;
  }

  /** Stops keeping records across passes and closes the feed. */
  unfollow(): void {
    this.feed?.close();
    this.feed = undefined;
    this.cache.clear();
  }

  /** Starts a pass: from now on each key is read once (until `end()`). */
  begin(): void | Promise<void> {
    const feed = this.feed;
    if (!feed) {
      this.inPass = true;
      return;
    }
    // Changes made before the pass started are seen by it: the pass starts once they arrived.
    return feed.settle().then(() => {
      this.inPass = true;
    });
  }

  /**
   * Ends the pass: drops what no watch vouches for, and the bytes of what a
   * reader parsed (its value stays); reads go to the store again.
   */
  end(): void {
    this.inPass = false;
    // forEach, not `for (const [key, e] of ...)`: that makes an entry array
    // and an iterator result per key (five keys per certificate, every pass).
    this.cache.forEach(this.endEntry);
  }

  private readonly endEntry = (e: Entry, key: string): void => {
    if (!e.token?.valid()) this.cache.delete(key);
    else if (e.as !== undefined) {
      e.read = undefined;
      e.bytes = undefined;
    }
  };

  load(key: string): Promise<Buffer | undefined> {
    if (!this.inPass) {
      this.reads++;
      return this.inner.load(key);
    }
    const cache = this.cache;
    const hit = cache.get(key);
    if (hit?.read && (!hit.token || hit.token.valid())) return hit.read;
    this.reads++;
    // Taken before the read: a change during it invalidates what it returns.
    const entry = new Entry(this.feed?.track(key));
    const value = this.inner.load(key).then((bytes) => {
      entry.bytes = bytes;
      return bytes;
    });
    entry.read = value;
    cache.set(key, entry);
    // A failure is the caller's to see, once; the next load tries again.
    value.catch(() => {
      if (cache.get(key) === entry) cache.delete(key);
    });
    return value;
  }

  async store(key: string, value: Buffer | string, opts?: { secret?: boolean }): Promise<void> {
    this.forget(key);
    try {
      await this.inner.store(key, value, opts);
    } finally {
      // A load that started while the write was under way may hold the old value.
      this.forget(key);
    }
  }

  async delete(key: string): Promise<void> {
    this.forget(key);
    try {
      await this.inner.delete(key);
    } finally {
      this.forget(key);
    }
  }

  async quarantine(key: string, at: Date): Promise<string | undefined> {
    this.forget(key);
    try {
      const aside = await this.inner.quarantine(key, at);
      if (aside !== undefined) this.forget(aside);
      return aside;
    } finally {
      this.forget(key);
    }
  }

  /**
   * The identity of what is kept for `key` while its watch still vouches
   * for it (an idle pass's shortcut compares these); undefined otherwise.
   * It is the token of the read (one per read that reached the store), not
   * the value: the identity outlives the bytes (`remember`). It holds no
   * record, only its directory's watch state (fs-watch.ts).
   * Without a feed nothing outlives a pass: undefined.
   */
  kept(key: string): object | undefined {
    const hit = this.cache.get(key);
    return hit?.token?.valid() ? hit.token : undefined;
  }

  /**
   * Tells the cache that `raw`, which a load of `key` returned, parses as
   * `as` into `value` (a read-only value, the same for every reader of
   * these bytes): from now on the entry keeps `value`, and `parsed(key,
   * as)` answers it while it is current; `raw` is let go when the pass
   * ends. Nothing when `raw` is not what is kept for `key` now.
   */
  remember(key: string, raw: Buffer, as: string, value: unknown): void {
    const hit = this.cache.get(key);
    if (!hit?.read || hit.bytes !== raw) return;
    hit.as = as;
    hit.value = value;
    // A watched key: its bytes go now (a plain load reads it again, and
    // what it reads is what the watch vouches for: the same, or a change
    // whose event ends this entry anyway). Without a watch (etcd) they stay
    // to the end of the pass, so that the pass sees one version.
    if (hit.token) {
      hit.read = undefined;
      hit.bytes = undefined;
    }
  }

  /**
   * The value `remember`ed for `key` as `as`, while its bytes would be
   * served for `key` now (in a pass; and vouched for by the watch, for an
   * entry with a token); undefined otherwise. Never reads.
   */
  parsed(key: string, as: string): { readonly value: unknown } | undefined {
    if (!this.inPass) return undefined;
    const hit = this.cache.get(key);
    if (hit?.as === undefined || hit.as !== as) return undefined;
    if (hit.token && !hit.token.valid()) return undefined;
    return { value: hit.value };
  }

  exists(key: string): Promise<boolean> {
    return this.inner.exists(key);
  }

  list(prefix: string): Promise<string[]> {
    return this.inner.list(prefix);
  }

  async lock(name: string, opts?: { timeoutMs?: number }): Promise<void> {
    await this.inner.lock(name, opts);
    // The holder re-reads what it decided on: from the store, not from before the lock.
    this.cache.clear();
  }

  unlock(name: string): Promise<void> {
    return this.inner.unlock(name);
  }

  private forget(key: string): void {
    this.cache.delete(key);
  }
}
