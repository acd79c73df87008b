import assert from 'node:assert/strict';
import { solo } from '../../src/app/coordination.js';
import { PassRunner } from '../../src/app/pass.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { silentLogger } from '../../src/util/log.js';

/** Keeps the CPU busy for about `ms` of process CPU time. */
function burn(ms: number): void {
  const start = process.cpuUsage();
  for (;;) {
    const d = process.cpuUsage(start);
    if ((d.user + d.system) / 1000 >= ms) return;
  }
}

function runner(work: () => void): PassRunner {
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
    clock: new FixedClock(new Date('2026-12-02T09:00:00Z')),
    log: silentLogger,
  });
}

describe('CPU per pass', () => {
  it('records the process CPU a pass spent in lastPass', async () => {
    const r = runner(() => burn(60));
    await r.run();
    const cpu = r.lastPass?.cpuSeconds;
    assert.ok(cpu !== undefined && cpu >= 0.06, `cpuSeconds ${String(cpu)}`);
    // A pass that only waits is not charged for what happened before it.
    burn(200);
    const idle = runner(() => undefined);
    await idle.run();
    assert.ok((idle.lastPass?.cpuSeconds ?? Infinity) < 0.2, String(idle.lastPass?.cpuSeconds));
  });

  it('exports the last pass CPU as acme_sidecar_last_pass_cpu_seconds', async () => {
    const m = new Metrics('static', {
      certificates: () => [],
      lastPass: () => ({ finishedAt: '2026-12-02T09:00:00Z', ok: true, cpuSeconds: 0.042 }),
    });
    const { body } = await m.render();
    assert.match(body, /^acme_sidecar_last_pass_cpu_seconds 0\.042$/m);
  });
});
