// DeferredMetrics (src/metrics/deferred-metrics.ts): prom-client is loaded
// only when metrics are wanted, and nothing recorded before is lost.
import assert from 'node:assert/strict';
import { Metrics } from '../../src/metrics/metrics.js';
import {
  DEFERRED_METRICS_MAX_BUFFERED,
  DeferredMetrics,
} from '../../src/metrics/deferred-metrics.js';

function counting(): { deferred: DeferredMetrics; creations: () => number } {
  let n = 0;
  const deferred = new DeferredMetrics(async () => {
    n++;
    return new Metrics('static');
  });
  return { deferred, creations: () => n };
}

/** One ACME request event, as the HTTP adapter reports it. */
const NEW_ORDER = {
  host: 'ca',
  step: 'newOrder',
  method: 'POST',
  status: '201',
  seconds: 0.1,
} as const;

describe('DeferredMetrics', () => {
  it('creates nothing while only recording', () => {
    const { deferred, creations } = counting();
    deferred.failure('a', 'CA_DOWN');
    deferred.platformRequest('GET', '200');
    deferred.acmeRequest(NEW_ORDER);
    assert.equal(creations(), 0);
    assert.equal(deferred.loaded, false);
  });

  it('replays what was recorded before the first render, once, and records directly after', async () => {
    const { deferred, creations } = counting();
    deferred.failure('a', 'CA_DOWN');
    deferred.failure('a', 'CA_DOWN');
    deferred.platformRequest('GET', '200');
    deferred.acmeRequest(NEW_ORDER);
    deferred.observe({
      certificates: () => [],
      lastPass: () => ({ finishedAt: '2026-01-01T00:00:00Z', ok: true }),
    });
    const first = (await deferred.render()).body;
    assert.match(first, /acme_sidecar_certificate_failures_total\{name="a",code="CA_DOWN"\} 2/);
    assert.match(
      first,
      /acme_sidecar_platform_requests_total\{platform="static",method="GET",status="200"\} 1/,
    );
    assert.match(
      first,
      /certmanager_http_acme_client_request_count\{[^}]*path="newOrder"[^}]*\} 1/,
    );
    assert.match(first, /acme_sidecar_last_pass_success 1/);
    deferred.failure('a', 'CA_DOWN');
    const second = (await deferred.render()).body;
    assert.match(second, /acme_sidecar_certificate_failures_total\{name="a",code="CA_DOWN"\} 3/);
    assert.equal(creations(), 1);
  });

  it('loads by itself once too many events wait, so a daemon never scraped stays bounded', async () => {
    const { deferred, creations } = counting();
    for (let i = 0; i <= DEFERRED_METRICS_MAX_BUFFERED; i++) deferred.platformRequest('GET', '200');
    assert.equal(creations(), 1);
    await deferred.load();
    assert.equal(deferred.loaded, true);
    assert.match(
      (await deferred.render()).body,
      new RegExp(`status="200"\\} ${DEFERRED_METRICS_MAX_BUFFERED + 1}\\b`),
    );
  });
});

describe('DeferredMetrics: a load that fails', () => {
  it('is tried again by the next call, never rejects unhandled, and keeps a bounded buffer', async () => {
    let fail = true;
    let n = 0;
    const deferred = new DeferredMetrics(async () => {
      n++;
      if (fail) throw new Error('chunk missing');
      return new Metrics('static');
    });
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (let i = 0; i < 3 * DEFERRED_METRICS_MAX_BUFFERED; i++) {
        deferred.platformRequest('GET', '200');
      }
      await new Promise((r) => setImmediate(r));
      await assert.rejects(deferred.render(), /chunk missing/);
      assert.ok(n >= 2, `tried again (${n} loads)`);
      assert.deepEqual(unhandled, []);
      fail = false;
      const body = (await deferred.render()).body;
      assert.equal(deferred.loaded, true);
      assert.match(body, new RegExp(`status="200"\\} ${2 * DEFERRED_METRICS_MAX_BUFFERED}\\b`));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
