/**
 * The one retry helper (certmagic's `doWithRetry`) and its sibling for
 * wait-until-state polls. When you are about to write a loop with a sleep in
 * it, use one of these.
 *
 * Time: deadlines are durations measured with `performance.now()`, never the
 * wall clock. Waits go through `sleep`, injectable so tests run instantly.
 */
import { SidecarError } from '../domain/errors.js';

/** Waits `ms`, or less if `signal` aborts meanwhile; never rejects. */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export const sleep: Sleep = (ms, signal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/** Exponential backoff: `baseMs × factor^(attempt-1)`, capped, times a random jitter factor. */
export interface Backoff {
  readonly baseMs: number;
  /** Default 2. */
  readonly factor?: number;
  /** Cap before jitter. Default none. */
  readonly maxMs?: number;
  /**
   * Each wait is multiplied by a number drawn from [low, high): `[0.75, 1.25]`
   * (the default) spreads it ±25 %, `[0.5, 1]` is "equal jitter", `[1, 1]` none.
   * Jitter spreads the retries of many sidecars that failed together.
   */
  readonly jitter?: readonly [low: number, high: number];
  /** A number in [0, 1). Default Math.random; injected by tests. */
  readonly random?: () => number;
}

export const DEFAULT_JITTER: readonly [number, number] = [0.75, 1.25];

/** The wait after failed attempt number `attempt` (1-based). */
export function backoffMs(attempt: number, b: Backoff): number {
  const exp = Math.min(b.maxMs ?? Infinity, b.baseMs * (b.factor ?? 2) ** (attempt - 1));
  const [low, high] = b.jitter ?? DEFAULT_JITTER;
  return exp * (low + (b.random ?? Math.random)() * (high - low));
}

/**
 * False only for an error that says it must not be retried: our coded
 * errors (`SidecarError.retryable`) and anything else with a boolean
 * `retryable`. An error without the marker is retried, as in certmagic.
 */
export function isRetryable(err: unknown): boolean {
  const marker = (err as { retryable?: unknown } | null)?.retryable;
  return typeof marker === 'boolean' ? marker : true;
}

/** The error's `retryAfter` hint (seconds, as the remote side said) in ms, if it has one. */
export function retryAfterMs(err: unknown): number | undefined {
  const s = (err as { retryAfter?: unknown } | null)?.retryAfter;
  return typeof s === 'number' && Number.isFinite(s) && s >= 0 ? s * 1000 : undefined;
}

export interface RetryOptions {
  /** Most attempts in all, the first included (at least 1; Infinity with a deadline). */
  readonly attempts: number;
  /** The wait after a failed attempt: exponential (default base 500 ms), or any function of the attempt number. */
  readonly backoff?: Backoff | ((attempt: number) => number);
  /**
   * Overall budget in ms from the first attempt: a wait that would end past
   * it is not started, the last error is thrown instead.
   */
  readonly deadlineMs?: number;
  /** Shutdown: no further attempt starts, a wait ends early, and ABORTED is thrown. */
  readonly signal?: AbortSignal;
  /**
   * Narrows what is retried, on top of {@link isRetryable}: an error marked
   * `retryable: false` is never retried, whatever this says.
   */
  readonly retryIf?: (err: unknown, attempt: number) => boolean;
  /** Told before each wait: the place for a "failed; retrying" log line. */
  readonly onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  readonly sleep?: Sleep;
  /** Monotonic ms for the deadline. Default performance.now. */
  readonly now?: () => number;
}

/**
 * Runs `fn` until it resolves, and returns what it resolved to. After a
 * failure it tries again if attempts and the deadline allow and the error
 * may be retried, waiting the backoff or the error's `retryAfter`, whichever
 * is longer. Otherwise the failure itself is thrown, unchanged.
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  opts: RetryOptions,
): Promise<T> {
  const attempts = Math.max(1, Math.floor(opts.attempts));
  const now = opts.now ?? (() => performance.now());
  const wait = opts.sleep ?? sleep;
  const deadline = opts.deadlineMs === undefined ? Infinity : now() + opts.deadlineMs;
  let last: unknown;
  for (let attempt = 1; ; attempt++) {
    throwIfAborted(opts.signal, attempt, last);
    try {
      return await fn(attempt);
    } catch (err) {
      last = err;
      if (attempt >= attempts || !isRetryable(err)) throw err;
      if (opts.retryIf && !opts.retryIf(err, attempt)) throw err;
      const b = opts.backoff ?? { baseMs: 500 };
      const computed = typeof b === 'function' ? b(attempt) : backoffMs(attempt, b);
      const delay = Math.max(computed, retryAfterMs(err) ?? 0);
      if (now() + delay > deadline) throw err;
      opts.onRetry?.(err, attempt, delay);
      await wait(delay, opts.signal);
    }
  }
}

export interface WaitOptions {
  /** Pause after an unsuccessful check: fixed, or by check number (1-based). */
  readonly intervalMs: number | ((check: number) => number);
  /**
   * Give up `ms` after `startedAt` (default: the call) with `error()`. The
   * last pause is cut short so one check falls on the deadline. Default: wait on.
   */
  readonly timeout?: {
    readonly ms: number;
    readonly error: () => Error;
    readonly startedAt?: number;
  };
  /** Shutdown: no further check starts, a pause ends early, and ABORTED is thrown. */
  readonly signal?: AbortSignal;
  readonly sleep?: Sleep;
  /** Monotonic ms. Default performance.now. */
  readonly now?: () => number;
}

/**
 * Polls `check` until it returns something other than undefined, and
 * returns that. A check that throws ends the wait with its error: a state
 * that can never come (rejected, gone) is the check's to report.
 */
export async function waitFor<T>(
  check: (n: number) => Promise<T | undefined>,
  opts: WaitOptions,
): Promise<T> {
  const now = opts.now ?? (() => performance.now());
  const wait = opts.sleep ?? sleep;
  const deadline = opts.timeout ? (opts.timeout.startedAt ?? now()) + opts.timeout.ms : Infinity;
  for (let n = 1; ; n++) {
    throwIfAborted(opts.signal, n, undefined);
    const value = await check(n);
    if (value !== undefined) return value;
    const remaining = deadline - now();
    if (remaining <= 0 && opts.timeout) throw opts.timeout.error();
    const interval = typeof opts.intervalMs === 'function' ? opts.intervalMs(n) : opts.intervalMs;
    await wait(Math.min(interval, remaining), opts.signal);
  }
}

function throwIfAborted(signal: AbortSignal | undefined, attempt: number, last: unknown): void {
  if (!signal?.aborted) return;
  throw new SidecarError('ABORTED', `stopped before attempt ${attempt}: shutting down`, {
    ...(last !== undefined && { cause: last }),
  });
}
