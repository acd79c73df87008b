/**
 * Monotonic milliseconds (uv_hrtime, the clock `performance.now()` reads
 * too), for checks made thousands of times per pass. Node 24's
 * `performance.now()` first checks its receiver through a wrapper that
 * gathers its arguments into an array: under the image's `--jitless` a
 * call took 210 ns and left about 84 bytes of garbage, against 124 ns and
 * 32 bytes for this (1e6 calls, 2026-12-03). The idle pass asked the age
 * of every kept record and live/ bundle, about 11000 times for 1000
 * certificates (docs/performance.md, the idle pass's CPU).
 */
export function monotonicMs(): number {
  return process.uptime() * 1000;
}
