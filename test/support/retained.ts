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
    gc();
    const withIt = v8.getHeapStatistics().used_heap_size;
    assert.ok(kept.length > 0);
    kept = undefined;
    gc();
    bytes = withIt - v8.getHeapStatistics().used_heap_size;
  }
  return bytes;
}
