/**
 * Polling an authorization or an order until the CA is done with it
 * (RFC 8555 §7.5.1 and §7.4). acme-client's waitForValidStatus polls at
 * once (the CA has rarely finished by then) and then only on its own
 * backoff, ignoring the CA's Retry-After. Here the CA's Retry-After is the
 * wait when it sends one; otherwise a short first wait, then doubling.
 */

/** When to poll. All in ms. */
export interface PollTiming {
  /** The wait before the first poll when the CA named none. */
  readonly firstMs: number;
  /** The wait before the second poll; doubles after each further one. */
  readonly baseMs: number;
  /** Cap of that doubling. */
  readonly maxMs: number;
  /** Cap of a Retry-After: a CA asking for longer is polled at this pace. */
  readonly maxRetryAfterMs: number;
  /** Give up after this long in all. */
  readonly deadlineMs: number;
}

/**
 * Let's Encrypt validates in about a second and issues in about as much;
 * a quarter second first catches a quick CA without hammering a slow one.
 */
export const POLL_TIMING: PollTiming = {
  firstMs: 250,
  baseMs: 500,
  maxMs: 10_000,
  maxRetryAfterMs: 60_000,
  deadlineMs: 180_000,
};

/**
 * The wait before poll number `n` (1-based), given the Retry-After (seconds)
 * of the CA's last answer, if it sent one (RFC 8555 §7.5.1: the server may
 * say when to ask again; a client should honour it).
 */
export function pollDelayMs(
  n: number,
  retryAfterS: number | undefined,
  t: PollTiming = POLL_TIMING,
): number {
  if (retryAfterS !== undefined && Number.isFinite(retryAfterS) && retryAfterS >= 0) {
    return Math.min(retryAfterS * 1000, t.maxRetryAfterMs);
  }
  if (n <= 1) return t.firstMs;
  return Math.min(t.maxMs, t.baseMs * 2 ** (n - 2));
}

/** What one poll found. */
export type PollVerdict = 'done' | 'wait' | 'failed' | 'unexpected';

/**
 * RFC 8555 §7.1.6: an authorization is done when `valid`, still being
 * validated while `pending`; an order after finalize is done when `valid`,
 * still being issued while `processing`. `invalid` is a failure; anything
 * else (`ready` after finalize, `deactivated`, `expired`, `revoked`) is not
 * something waiting will change.
 */
export function pollVerdict(kind: 'authorization' | 'order', status: unknown): PollVerdict {
  if (status === 'valid') return 'done';
  if (status === 'invalid') return 'failed';
  if (kind === 'authorization' && status === 'pending') return 'wait';
  if (kind === 'order' && status === 'processing') return 'wait';
  return 'unexpected';
}
