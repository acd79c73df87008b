// The retry schedule as the reconciler records it (src/reconcile/retry-schedule.ts):
// what is served decides the wait after a failure (lifecycle/policy.ts retryDelayMs).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SidecarError } from '../../src/domain/errors.js';
import type { CertStatus } from '../../src/domain/status.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import { RetrySchedule } from '../../src/reconcile/retry-schedule.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { RecordReader } from '../../src/store/records.js';
import { silentLogger } from '../../src/util/log.js';

const NOW = '2026-06-01T00:00:00Z';
const H = 3600_000;
const DAY = 24 * H;

describe('RetrySchedule: the wait after a failure follows what is served', () => {
  let dir: string;
  let schedule: RetrySchedule;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'retry-schedule-'));
    const store = new FsCertStore(dir);
    const clock = new FixedClock(NOW);
    schedule = new RetrySchedule(
      {
        store,
        clock,
        random: () => 0.5,
        settings: {
          target: 'production',
          keyType: 'ecdsa-p256',
          directories: { staging: 'https://s.test/dir', production: 'https://p.test/dir' },
        },
      },
      new RecordReader(store, clock, silentLogger),
    );
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const waitAfterFourthFailure = async (
    phase: CertStatus['phase'],
    notAfterFromNowMs: number | undefined,
    retryAfter?: number,
  ): Promise<number> => {
    const st: CertStatus = {
      name: 'www',
      domains: ['www.example.com'],
      phase,
      ...(notAfterFromNowMs !== undefined && {
        notAfter: new Date(Date.parse(NOW) + notAfterFromNowMs).toISOString(),
      }),
      reason: 'Backoff',
      ready: false,
      attempts: 3,
    };
    await schedule.fail(
      st,
      new SidecarError('ACME_SERVER_ERROR', 'the CA is down', {
        retryable: true,
        ...(retryAfter !== undefined && { retryAfter }),
      }),
      silentLogger,
    );
    assert.equal(st.attempts, 4);
    return Date.parse(st.nextRetry ?? '') - Date.parse(NOW);
  };

  it('retries an expired production certificate after one minute, not a day', async () => {
    assert.equal(await waitAfterFourthFailure('production', -H), 60_000);
  });

  it('still waits as long as the CA asks while an expired certificate is served', async () => {
    assert.equal(await waitAfterFourthFailure('production', -H, 900), 900_000);
  });

  it('keeps the daily step for an expired self-signed placeholder', async () => {
    assert.equal(await waitAfterFourthFailure('self-signed', -H), DAY);
  });

  it('keeps the daily step when nothing is served', async () => {
    assert.equal(await waitAfterFourthFailure('none', undefined), DAY);
  });

  it('waits a third of the time left on a certificate that has not expired', async () => {
    assert.equal(await waitAfterFourthFailure('production', 6 * H), 2 * H);
  });
});
