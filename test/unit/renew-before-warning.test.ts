import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import type { LiveTarget } from '../../src/domain/status.js';
import type { CertBundle, CertSpec } from '../../src/domain/types.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import { Reconciler } from '../../src/reconcile/reconciler.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import {
  type Line,
  recordingLogger,
  staticPlatform,
  storeStagingCert,
} from '../support/reconcile.js';

// RENEW_BEFORE_DAYS against a short lifetime (issue 12 item 1, issue 16
// item 5): capped at half the lifetime, and one warning per certificate
// that names it and its lifetime, not one per pass.

const NOW = '2026-06-01T00:00:00Z';
const DAY = 24 * 3600_000;
const STAGING = 'https://staging.test/dir';
const SPEC: CertSpec = { name: 'www', domains: ['www.example.com'], source: 'test' };

const platform = staticPlatform([SPEC]);

describe('reconcile: RENEW_BEFORE_DAYS on a 6-day certificate', () => {
  let root: string;
  let store: FsCertStore;
  let clock: FixedClock;
  let lines: Line[];
  let bundle: CertBundle;

  const reconciler = (renewBeforeDays: number) =>
    new Reconciler({
      store,
      live: {
        write: () => Promise.resolve(),
        read: () => Promise.resolve(bundle),
        path: () => ({ dir: '', cert: '', chain: '', fullchain: '', privkey: '' }),
      } satisfies LiveTarget,
      issuers: {
        'self-signed': new SelfSignedIssuer(clock),
        staging: {
          phase: 'staging',
          directoryUrl: STAGING,
          issue: () => Promise.reject(new Error('the staging CA must not be asked')),
        },
        production: {
          phase: 'production',
          directoryUrl: 'https://prod.test/dir',
          issue: () => Promise.reject(new Error('the production CA must not be asked')),
        },
      },
      platform,
      clock,
      log: recordingLogger(lines),
      random: () => 0.5,
      settings: {
        target: 'staging',
        keyType: 'ecdsa-p256',
        directories: { staging: STAGING, production: 'https://prod.test/dir' },
        renewBeforeDays,
      },
    });

  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'renew-before-'));
    store = new FsCertStore(join(root, 'store'));
    clock = new FixedClock(NOW);
    lines = [];
    // Issued a day ago, valid for 6 days.
    ({ bundle } = await storeStagingCert({
      store,
      spec: SPEC,
      directoryUrl: STAGING,
      issuedBy: new FixedClock(new Date(Date.parse(NOW) - DAY)),
      issuedAt: NOW,
      days: 6,
    }));
  });

  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  const warnings = () => lines.filter((l) => l.level === 'warn');
  const leaf = () => new X509Certificate(bundle.cert);
  const notAfter = () => Date.parse(leaf().validTo);
  /** The placeholder issuer back-dates by an hour: 6 days and 1 hour. */
  const lifetime = () => notAfter() - Date.parse(leaf().validFrom);
  const seconds = (ms: number) => Math.round(ms / 1000);

  const cases: { name: string; days: number; warn?: RegExp }[] = [
    {
      name: 'warns once, naming the certificate and its lifetime, when RENEW_BEFORE_DAYS is above the lifetime (30 days)',
      days: 30,
      warn: /at or above the certificate lifetime/,
    },
    {
      name: 'caps RENEW_BEFORE_DAYS just under the lifetime (5.99 days) at half, with one warning',
      days: 5.99,
      warn: /more than half the certificate lifetime; capped/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const r = reconciler(c.days);
      let st = await r.reconcileOne(SPEC);
      clock.advance(60_000);
      st = await r.reconcileOne(SPEC);
      assert.equal(st.reason, 'Valid', 'no renewal on every pass');
      assert.equal(st.renewAt, new Date(notAfter() - lifetime() / 2).toISOString());
      assert.equal(warnings().length, 1, JSON.stringify(warnings()));
      const w = warnings()[0]!;
      assert.match(w.msg, c.warn!);
      assert.equal(w.fields.cert, 'www');
      assert.equal(w.fields.lifetime, '6 days');
      assert.equal(w.fields.lifetimeSeconds, seconds(lifetime()));
      assert.equal(w.fields.renewBeforeDays, c.days);
      assert.equal(w.fields.renewsBeforeExpirySeconds, seconds(lifetime() / 2));
    });
  }

  it('applies a RENEW_BEFORE_DAYS under half the lifetime as set, without a warning', async () => {
    const st = await reconciler(1).reconcileOne(SPEC);
    assert.equal(st.renewAt, new Date(notAfter() - DAY).toISOString());
    assert.equal(warnings().length, 0, JSON.stringify(warnings()));
  });
});
