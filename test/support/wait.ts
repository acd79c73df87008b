import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** What is awaited, for the timeout message ("the replica to serve a.test"). */
  what: string;
  /** Time between checks (default 50 ms). */
  intervalMs?: number;
}

/**
 * Waits until `predicate` returns a truthy value and resolves with it; a test
 * waits for the state it expects, never for a fixed time. A predicate that
 * throws counts as "not yet" and its last error is in the timeout message.
 * (devenv/proc.ts's `waitUntilReady` is the same loop for a child process.)
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  opts: WaitOptions,
): Promise<NonNullable<Awaited<T>>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const start = performance.now();
  let lastError = '';
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value as NonNullable<Awaited<T>>;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (performance.now() - start > timeoutMs) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${opts.what}` +
          (lastError ? ` (last error: ${lastError})` : ''),
      );
    }
    await sleep(opts.intervalMs ?? 50);
  }
}
