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
  /** `joined`'s strings, by their first part: the second part, and the two joined. */
  private readonly joins = new Map<string, { readonly second: string; readonly both: string }>();

  /** `s`, or the equal string given first since the last `clear()`. */
  intern(s: string): string {
    const have = this.strings.get(s);
    if (have !== undefined) return have;
    this.strings.set(s, s);
    return s;
  }

  /**
   * A string equal to `whole`: when `whole` is `first` followed by
   * `second` (two pooled strings), the concatenation `first + second`,
   * the same one for every equal pair since the last `clear()`; else
   * `intern(whole)`. V8 keeps a concatenation as a rope of its two parts
   * (a ConsString, a few dozen bytes) until something needs it flat (a
   * regular expression, a hash, a write), so a fullchain costs nothing
   * beside its certificate and chain: 2.1 KB per certificate kept by the
   * idle daemon otherwise (heap snapshot, 300 certificates). A rope made
   * flat later holds a flat copy, as `whole` did: never more than before.
   * Comparing it (===) or hashing it makes it flat too: it is never a Map
   * key here (the pair is looked up by `first`), and nothing the idle
   * daemon runs compares a fullchain.
   */
  joined(whole: string, first: string, second: string): string {
    if (second === '') return whole === first ? first : this.intern(whole);
    if (
      whole.length !== first.length + second.length ||
      !whole.startsWith(first) ||
      !whole.endsWith(second)
    ) {
      return this.intern(whole);
    }
    const have = this.joins.get(first);
    if (have?.second === second) return have.both;
    const both = first + second;
    this.joins.set(first, { second, both });
    return both;
  }

  get size(): number {
    return this.strings.size;
  }

  clear(): void {
    this.strings.clear();
    this.joins.clear();
  }
}

/** The process's pool of PEM strings (emptied at the end of each pass). */
export const pemPool = new StringPool();

/**
 * `bundle` with its four strings taken from `pool` (other fields kept);
 * its fullchain, when it is the certificate followed by the chain, is the
 * two joined (`StringPool.joined`). Check the bundle before pooling it: a
 * check that reads the fullchain with a regular expression makes it flat.
 */
export function pooledBundle<B extends CertBundle>(bundle: B, pool: StringPool = pemPool): B {
  const cert = pool.intern(bundle.cert);
  const chain = pool.intern(bundle.chain);
  return {
    ...bundle,
    cert,
    chain,
    fullchain: pool.joined(bundle.fullchain, cert, chain),
    privkey: pool.intern(bundle.privkey),
  };
}
