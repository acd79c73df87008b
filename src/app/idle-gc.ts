/**
 * The daemon's memory between passes (issue 15 goal 3). A pass over many
 * certificates holds what it read until it ends (store records, the
 * platform's lists, parsed certificates), so most of it outlives V8's young
 * generation and becomes old-generation garbage. V8 collects that only when
 * the old generation reaches its next limit, which grows with the heap, and
 * an idle process allocates too little to get there: with 300 certificates
 * the daemon's RSS grew by about 8 MB per idle pass and stayed there for
 * the minutes between passes (docs/performance.md, the memory section).
 *
 * With `gc` exposed (`node --expose-gc`, as the image starts the CLI), one
 * full collection runs once the daemon has been idle for `delayMs` after a
 * pass: the garbage of that pass goes, and the RSS stays flat from pass to
 * pass. A pass that comes sooner collects first when the heap has grown
 * `EARLY_GROWTH` times over since the last collection. Without `gc` this
 * does nothing.
 *
 * The collection is V8's last-resort one (`flavor: 'last-resort'`, V8's
 * CollectAllAvailableGarbage: it compacts and hands the freed pages back to
 * the OS), not a plain full one, which leaves the pages the pass grew the
 * heap by resident: with 300 certificates on Node 24 the RSS went from 132
 * to 115 MB (86 ms; a plain `gc()` 3 s before had left it at 132 MB).
 * Node 20's V8 ignores `flavor` and runs a plain full collection.
 */
import type { Logger } from '../util/log.js';

/** What `collect` asks of `gc`: synchronous, full, and handing memory back. */
export const LAST_RESORT = { type: 'major', execution: 'sync', flavor: 'last-resort' } as const;

export interface IdleCollectorOptions {
  /** `globalThis.gc` (undefined unless Node runs with --expose-gc). */
  readonly gc: ((options: typeof LAST_RESORT) => void) | undefined;
  /** Idle time after a pass before collecting. */
  readonly delayMs: number;
  readonly log: Logger;
  /** The heap in use, in bytes (default: `process.memoryUsage().heapUsed`). */
  readonly heapUsed?: () => number;
}

/**
 * A pass that starts before the delay is up collects first if the heap has
 * grown this many times over since the last collection (a pass that did
 * the work, not an idle one, left its garbage).
 */
export const EARLY_GROWTH = 2;

/**
 * Wraps a pass: a pass that starts cancels the pending collection, one
 * that ends (or throws) schedules it. The timer never keeps the process up.
 */
export function collectWhenIdle<A extends unknown[], R>(
  pass: (...args: A) => Promise<R>,
  opts: IdleCollectorOptions,
): { pass: (...args: A) => Promise<R>; stop: () => void } {
  const { gc, delayMs, log } = opts;
  const heapUsed = opts.heapUsed ?? (() => process.memoryUsage().heapUsed);
  let timer: NodeJS.Timeout | undefined;
  let running = 0;
  /** The heap in use after the last collection (at first: when this was made). */
  let afterLast = heapUsed();
  let lastEarlyAt = -Infinity;
  const cancel = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  const collect = (early = false) => {
    timer = undefined;
    if (!gc || running > 0) return;
    const before = process.memoryUsage();
    const t0 = performance.now();
    gc(LAST_RESORT);
    const after = process.memoryUsage();
    afterLast = opts.heapUsed ? opts.heapUsed() : after.heapUsed;
    log.debug('heap collected after the pass', {
      ...(early && { early: 'the next pass came before the idle delay' }),
      ms: Math.round(performance.now() - t0),
      heapUsedMB: Math.round(after.heapUsed / 1048576),
      freedMB: Math.round((before.heapUsed - after.heapUsed) / 1048576),
      rssMB: Math.round(after.rss / 1048576),
    });
  };
  return {
    pass: async (...args: A) => {
      // The garbage of a pass that did the work (the first one: 1000
      // certificates read, checked and asked about) is collected before the
      // next pass even when that one comes before the delay (a watched file
      // changed, a retry came due): otherwise V8's own full collection of it
      // fell inside the next, idle pass (109 ms of its CPU, against 34 ms for
      // the passes after it; docs/performance.md). Not after an idle pass,
      // which grows the heap by little: frequent passes pay no collection each.
      // At most one such collection per delay: passes that keep doubling
      // the heap are left to V8's own collections in between.
      const early =
        timer !== undefined &&
        performance.now() - lastEarlyAt >= delayMs &&
        heapUsed() > EARLY_GROWTH * afterLast;
      cancel();
      if (early) {
        lastEarlyAt = performance.now();
        collect(true);
      }
      running++;
      try {
        return await pass(...args);
      } finally {
        running--;
        if (gc && running === 0) {
          cancel();
          timer = setTimeout(collect, delayMs);
          timer.unref();
        }
      }
    },
    stop: cancel,
  };
}
