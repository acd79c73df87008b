/**
 * One copy of each certificate, chain and key string the daemon keeps
 * (issue 15 goal 3). The daemon keeps every certificate's stored record
 * (store/pass-cache.ts, parsed by store/records.ts) and its live/ bundle
 * (deploy/live-dir.ts) from one pass to the next, each read on its own, so
 * every PEM was held twice, and the CA's intermediate twice per
 * certificate: a heap snapshot of the idle daemon with 300 certificates
 * held 3.2 MB of PEM strings for 1.4 MB of distinct ones.
 *
 * Both readers hand their strings to `pemPool`, which gives back the first
 * equal string it was given during the pass; the pool is emptied when the
 * pass ends (app/pass.ts), so it never keeps a string no one else holds
 * for longer than a pass. A string read outside a pass (a control command)
 * stays until the next pass ends.
 */
import type { CertBundle } from '../domain/types.js';

export class StringPool {
  private readonly strings = new Map<string, string>();

  /** `s`, or the equal string given first since the last `clear()`. */
  intern(s: string): string {
    const have = this.strings.get(s);
    if (have !== undefined) return have;
    this.strings.set(s, s);
    return s;
  }

  get size(): number {
    return this.strings.size;
  }

  clear(): void {
    this.strings.clear();
  }
}

/** The process's pool of PEM strings (emptied at the end of each pass). */
export const pemPool = new StringPool();

/** `bundle` with its four strings taken from `pool` (other fields kept). */
export function pooledBundle<B extends CertBundle>(bundle: B, pool: StringPool = pemPool): B {
  return {
    ...bundle,
    cert: pool.intern(bundle.cert),
    chain: pool.intern(bundle.chain),
    fullchain: pool.intern(bundle.fullchain),
    privkey: pool.intern(bundle.privkey),
  };
}
