import type { CertStore } from './store.js';

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
 * `reads` counts the loads that reached the store (for the pass metrics).
 */
export class PassReadCache implements CertStore {
  /** Loads that reached the store since this object was made. */
  reads = 0;
  private cache: Map<string, Promise<Buffer | undefined>> | undefined;

  constructor(readonly inner: CertStore) {}

  /** Starts a pass: from now on each key is read once (until `end()`). */
  begin(): void {
    this.cache = new Map();
  }

  /** Ends the pass: drops what was read, and reads go to the store again. */
  end(): void {
    this.cache = undefined;
  }

  load(key: string): Promise<Buffer | undefined> {
    const cache = this.cache;
    if (!cache) {
      this.reads++;
      return this.inner.load(key);
    }
    const hit = cache.get(key);
    if (hit) return hit;
    this.reads++;
    const p = this.inner.load(key);
    cache.set(key, p);
    // A failure is the caller's to see, once; the next load tries again.
    p.catch(() => {
      if (cache.get(key) === p) cache.delete(key);
    });
    return p;
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

  exists(key: string): Promise<boolean> {
    return this.inner.exists(key);
  }

  list(prefix: string): Promise<string[]> {
    return this.inner.list(prefix);
  }

  async lock(name: string, opts?: { timeoutMs?: number }): Promise<void> {
    await this.inner.lock(name, opts);
    // The holder re-reads what it decided on: from the store, not from before the lock.
    this.cache?.clear();
  }

  unlock(name: string): Promise<void> {
    return this.inner.unlock(name);
  }

  private forget(key: string): void {
    this.cache?.delete(key);
  }
}
