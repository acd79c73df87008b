import { SidecarError } from '../domain/errors.js';
import { isIpv6CertName } from '../domain/ip-address.js';

/**
 * Key-value storage for everything the sidecar must remember (accounts,
 * certificates, their metadata), modelled on certmagic's Storage + Locker.
 * Keys are '/'-separated paths of safe segments (see `assertStoreKey`);
 * nothing outside an implementation may assume they are files.
 */
export interface CertStore extends Locker {
  /** Writes atomically: a reader sees the old value or the new, never a mix. */
  store(key: string, value: Buffer | string, opts?: { secret?: boolean }): Promise<void>;
  /** Returns undefined when the key does not exist. */
  load(key: string): Promise<Buffer | undefined>;
  delete(key: string): Promise<void>;
  exists(key: string): Promise<boolean>;
  /** Keys directly below `prefix` (one level, names only), sorted. */
  list(prefix: string): Promise<string[]>;
  /**
   * Moves the value at `key` aside (keys.ts `asideKey`), never deleting it:
   * a record that failed validation is kept for a person to look at, and
   * `key` then reads as missing. Returns where it went, or undefined if
   * there was nothing at `key`. Never overwrites an earlier aside copy.
   */
  quarantine(key: string, at: Date): Promise<string | undefined>;
  /**
   * Optional (pass-cache.ts): the identity of the value kept for `key`
   * while a watch vouches that it has not changed since it was read; a
   * changed value gets a new identity; undefined when nothing vouches for it
   * (not read, changed since, or no watch). For the idle shortcut
   * (reconcile/steady.ts). Never reads.
   */
  kept?(key: string): object | undefined;
  /**
   * Optional (pass-cache.ts): `raw`, as loaded from `key`, parses as `as`
   * into the read-only `value`; the store may keep that instead of the
   * bytes, and answer `parsed(key, as)` with it while the bytes are current.
   */
  remember?(key: string, raw: Buffer, as: string, value: unknown): void;
  /** Optional (pass-cache.ts): what `remember` was told for the current bytes of `key`. Never reads. */
  parsed?(key: string, as: string): { readonly value: unknown } | undefined;
}

/**
 * Mutual exclusion by name, across processes that share the store.
 * A caller that gets the lock owes an `unlock` in `finally`, and must
 * re-read whatever it decided on before acting: another holder may have
 * done the work while it waited.
 */
export interface Locker {
  lock(name: string, opts?: { timeoutMs?: number }): Promise<void>;
  unlock(name: string): Promise<void>;
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$/;

/**
 * The certificate name of an IPv6 address (`--1` for `::1`), which may
 * start with `-`, alone or with suffixes (`--1.json`).
 */
function ipv6NameSegment(p: string): boolean {
  const dot = p.indexOf('.');
  const base = dot < 0 ? p : p.slice(0, dot);
  return isIpv6CertName(base) && /^(?:\.[A-Za-z0-9_-]+)*$/.test(dot < 0 ? '' : p.slice(dot));
}

/** Throws unless every segment is a plain, non-dot name (no '..', no '/'). */
export function assertStoreKey(key: string): void {
  const parts = key.split('/');
  for (const p of parts) {
    if ((!SEGMENT.test(p) && !ipv6NameSegment(p)) || p.includes('..')) {
      throw new SidecarError('STORE_KEY_INVALID', `invalid store key ${JSON.stringify(key)}`);
    }
  }
}
