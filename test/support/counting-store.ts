import type { FsCertStore } from '../../src/store/fs-store.js';
import type { CertStore } from '../../src/store/store.js';

/** A real store on disk that counts the loads reaching it, per key. */
export class CountingStore implements CertStore {
  readonly loads = new Map<string, number>();
  failNext = false;
  constructor(readonly inner: FsCertStore) {}
  total(): number {
    return [...this.loads.values()].reduce((a, b) => a + b, 0);
  }
  reset(): void {
    this.loads.clear();
  }
  load(key: string) {
    this.loads.set(key, (this.loads.get(key) ?? 0) + 1);
    if (this.failNext) {
      this.failNext = false;
      return Promise.reject(new Error('EIO'));
    }
    return this.inner.load(key);
  }
  store(key: string, value: Buffer | string, opts?: { secret?: boolean }) {
    return this.inner.store(key, value, opts);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
  exists(key: string) {
    return this.inner.exists(key);
  }
  list(prefix: string) {
    return this.inner.list(prefix);
  }
  quarantine(key: string, at: Date) {
    return this.inner.quarantine(key, at);
  }
  lock(name: string) {
    return this.inner.lock(name);
  }
  unlock(name: string) {
    return this.inner.unlock(name);
  }
}
