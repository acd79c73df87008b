import assert from 'node:assert/strict';
import { Metrics } from '../../src/metrics/metrics.js';
import { oneCertPassRunner } from '../support/pass-runner.js';

/** Keeps the CPU busy for about `ms` of process CPU time. */
function burn(ms: number): void {
  const start = process.cpuUsage();
  for (;;) {
    const d = process.cpuUsage(start);
    if ((d.user + d.system) / 1000 >= ms) return;
  }
}

describe('CPU per pass', () => {
  it('records the process CPU a pass spent in lastPass', async () => {
    const r = oneCertPassRunner(() => burn(60));
    await r.run();
    const cpu = r.lastPass?.cpuSeconds;
    assert.ok(cpu !== undefined && cpu >= 0.06, `cpuSeconds ${String(cpu)}`);
    // A pass that only waits is not charged for what happened before it.
    burn(200);
    const idle = oneCertPassRunner(() => undefined);
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
