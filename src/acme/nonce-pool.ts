/**
 * RFC 8555 §7.2: every response from the CA carries a fresh `Replay-Nonce`.
 * acme-client ignores them and sends a HEAD to `newNonce` before every
 * signed request, about twice the requests an order needs. The pool keeps
 * the nonces responses brought, per CA origin, so a HEAD is sent only when
 * it is empty.
 *
 * The newest nonce is used first and nonces older than `maxAgeMs` are
 * dropped: a CA forgets nonces after a while (Boulder keeps them for
 * minutes), and a stale one costs a badNonce round trip. A nonce is handed
 * out once; a rejected one is simply gone (the badNonce answer carries the
 * next, RFC 8555 §6.5).
 */
export interface NoncePoolOptions {
  /** Nonces kept per origin; the oldest is dropped beyond this. Default 16. */
  readonly maxPerOrigin?: number;
  /** A nonce older than this is not used. Default 60 s. */
  readonly maxAgeMs?: number;
  /** Monotonic ms. Default performance.now. */
  readonly now?: () => number;
}

interface Entry {
  readonly nonce: string;
  readonly at: number;
}

/** RFC 8555 §6.5.1: base64url, at least 128 bits is the CA's business; we only refuse junk. */
const NONCE = /^[A-Za-z0-9_-]{1,256}$/;

export class NoncePool {
  private readonly byOrigin = new Map<string, Entry[]>();
  private readonly max: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(opts: NoncePoolOptions = {}) {
    this.max = opts.maxPerOrigin ?? 16;
    this.maxAgeMs = opts.maxAgeMs ?? 60_000;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Keeps the nonce a response from `url` carried. Ignores a missing or malformed one. */
  put(url: string, nonce: unknown): void {
    const origin = originOf(url);
    if (origin === undefined || typeof nonce !== 'string' || !NONCE.test(nonce)) return;
    const list = this.byOrigin.get(origin) ?? [];
    list.push({ nonce, at: this.now() });
    if (list.length > this.max) list.splice(0, list.length - this.max);
    this.byOrigin.set(origin, list);
  }

  /** The freshest unused nonce for the CA at `url`'s origin, or undefined (then fetch one). */
  take(url: string): string | undefined {
    const origin = originOf(url);
    if (origin === undefined) return undefined;
    const list = this.byOrigin.get(origin);
    if (!list) return undefined;
    const oldest = this.now() - this.maxAgeMs;
    let found: string | undefined;
    while (list.length > 0 && found === undefined) {
      const e = list.pop() as Entry;
      if (e.at >= oldest) found = e.nonce;
      // The rest are older still: drop them all at once.
      else list.length = 0;
    }
    if (list.length === 0) this.byOrigin.delete(origin);
    return found;
  }

  /** Nonces held for `url`'s origin (tests, metrics). */
  size(url: string): number {
    const origin = originOf(url);
    return origin === undefined ? 0 : (this.byOrigin.get(origin)?.length ?? 0);
  }

  clear(): void {
    this.byOrigin.clear();
  }
}

function originOf(url: string): string | undefined {
  try {
    const o = new URL(url).origin;
    return o === 'null' ? undefined : o;
  } catch {
    return undefined;
  }
}
