import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * The heap bytes that what `build` returns holds and nothing else does,
 * after full collections (`gc` exposed at run time, reached through a new
 * context). `after` runs once the values are built (to empty a pool that
 * would hold them too). Built twice: the first round warms up (compiled
 * code, caches), the second is measured.
 */
export function retainedBy(build: () => unknown[], after?: () => void): number {
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let bytes = 0;
  for (let round = 0; round < 2; round++) {
    let kept: unknown[] | undefined = build();
    after?.();
    const withIt = settledHeap(gc);
    assert.ok(kept.length > 0);
    kept = undefined;
    bytes = withIt - settledHeap(gc);
  }
  return bytes;
}

/**
 * The used heap once full collections stop changing it: one collection
 * can leave garbage of earlier work (a first one freed 254 KB that a
 * second one did not have), which would be counted as retained.
 */
function settledHeap(gc: () => void): number {
  gc();
  let used = v8.getHeapStatistics().used_heap_size;
  for (let i = 0; i < 10; i++) {
    gc();
    const now = v8.getHeapStatistics().used_heap_size;
    if (Math.abs(now - used) < 1024) return now;
    used = now;
  }
  return used;
}
