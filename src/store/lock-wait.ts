import { SidecarError } from '../domain/errors.js';
import { waitFor } from '../util/retry.js';

/** How often a waiter tries a held lock again. */
export const DEFAULT_LOCK_POLL_MS = 200;
/** How long lock() waits before LOCK_TIMEOUT. */
export const DEFAULT_LOCK_TIMEOUT_MS = 5 * 60_000;

/**
 * The Locker wait every store shares: tries `take` until it returns the
 * lock, pausing `pollMs` between tries (the last pause cut to the time
 * left), or throws LOCK_TIMEOUT (retryable) `timeoutMs` after `startedAt`
 * (a `performance.now()` reading). Errors of `take` end the wait.
 */
export function waitForLock<T>(
  name: string,
  take: () => Promise<T | undefined>,
  opts: { readonly timeoutMs: number; readonly pollMs: number; readonly startedAt: number },
): Promise<T> {
  return waitFor(take, {
    intervalMs: opts.pollMs,
    timeout: {
      ms: opts.timeoutMs,
      startedAt: opts.startedAt,
      error: () =>
        new SidecarError(
          'LOCK_TIMEOUT',
          `lock ${JSON.stringify(name)} still held by another holder after ${opts.timeoutMs} ms`,
          { retryable: true },
        ),
    },
  });
}
