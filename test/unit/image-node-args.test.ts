import assert from 'node:assert/strict';
import { imageMallocEnv, imageNodeArgs } from '../../scripts/image-node-args.js';

// The benches run the daemon and `once` as the image does: with the flags of
// the Dockerfile's ENTRYPOINT and the MALLOC_* of its runtime ENV.
describe('image-node-args: what the benches read from the Dockerfile', () => {
  it("the ENTRYPOINT's Node flags", () => {
    assert.deepEqual(imageNodeArgs(), ['--jitless', '--max-semi-space-size=1', '--expose-gc']);
  });

  it("the runtime stage's malloc tunables, and nothing else of its ENV", () => {
    assert.deepEqual(imageMallocEnv(), {
      MALLOC_ARENA_MAX: '2',
      MALLOC_MMAP_THRESHOLD_: '131072',
      MALLOC_TRIM_THRESHOLD_: '131072',
    });
  });
});
