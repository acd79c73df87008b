/**
 * A PassRunner over one static certificate whose reconcile step is `work`:
 * for tests of what a pass does around the reconciler (its CPU figure, the
 * PEM pool emptied at its end).
 */
import { solo } from '../../src/app/coordination.js';
import { PassRunner } from '../../src/app/pass.js';
import { FixedClock, type Clock } from '../../src/lifecycle/clock.js';
import { silentLogger } from '../../src/util/log.js';

export function oneCertPassRunner(
  work: () => void,
  clock: Clock = new FixedClock(new Date('2026-12-02T09:00:00Z')),
): PassRunner {
  return new PassRunner({
    discoverer: {
      discover: () =>
        Promise.resolve({
          specs: [{ name: 'a', domains: ['a.test'], source: 'env' }],
          problems: [],
        }),
    },
    reconcileAll: () => {
      work();
      return Promise.resolve([]);
    },
    platform: { name: 'static' },
    probeStore: () => Promise.resolve(),
    sweepers: [],
    coordination: solo,
    noCertificatesHint: '',
    clock,
    log: silentLogger,
  });
}
