import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IssueOptions, Issuer } from '../../src/acme/issuer.js';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import type { LiveTarget } from '../../src/domain/status.js';
import type { CertBundle, CertSpec, KeyType } from '../../src/domain/types.js';
import type { RenewalInfoAnswer } from '../../src/lifecycle/ari.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import type { AriTracker } from '../../src/reconcile/ari.js';
import { Reconciler } from '../../src/reconcile/reconciler.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { ariKey } from '../../src/store/keys.js';
import {
  type Line,
  recordingLogger,
  staticPlatform,
  storeStagingCert,
} from '../support/reconcile.js';

const NOW = '2026-06-01T00:00:00Z';
const H = 3600_000;
const DAY = 24 * H;
const STAGING = 'https://staging.test/dir';
const SPEC: CertSpec = { name: 'www', domains: ['www.example.com'], source: 'test' };

const platform = staticPlatform([SPEC]);

/** A staging CA that answers renewalInfo with whatever the test sets, and counts the questions. */
class AriCa implements Issuer {
  readonly phase = 'staging' as const;
  readonly directoryUrl = STAGING;
  asked = 0;
  orders = 0;
  replacing: (string | undefined)[] = [];
  /** Issues 90-day certificates when set; refuses every order otherwise. */
  issuing?: SelfSignedIssuer;
  constructor(public answer: RenewalInfoAnswer) {}
  issue(
    spec: CertSpec,
    keyType: KeyType,
    _signal?: AbortSignal,
    opts: IssueOptions = {},
  ): Promise<CertBundle> {
    this.orders += 1;
    this.replacing.push(opts.replacing);
    if (this.issuing) return this.issuing.issue(spec, keyType);
    return Promise.reject(new Error('no orders in this test'));
  }
  renewalInfo(): Promise<RenewalInfoAnswer> {
    this.asked += 1;
    return Promise.resolve(this.answer);
  }
}

const windowAt = (startH: number, endH: number): RenewalInfoAnswer => ({
  kind: 'info',
  info: {
    window: {
      start: new Date(Date.parse(NOW) + startH * H),
      end: new Date(Date.parse(NOW) + endH * H),
    },
    explanationUrl: 'https://ca.test/why',
  },
  retryAfterS: 3600,
});

describe('reconcile: ARI renewal information', () => {
  let root: string;
  let store: FsCertStore;
  let clock: FixedClock;
  let lines: Line[];
  let ca: AriCa;
  let bundle: CertBundle;

  const reconciler = () =>
    new Reconciler({
      store,
      live: {
        write: (_name, b) => {
          bundle = b;
          return Promise.resolve();
        },
        read: () => Promise.resolve(bundle),
        path: () => ({ dir: '', cert: '', chain: '', fullchain: '', privkey: '' }),
      } satisfies LiveTarget,
      issuers: {
        'self-signed': new SelfSignedIssuer(clock),
        staging: ca,
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
      },
    });

  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'ari-reconcile-'));
    store = new FsCertStore(join(root, 'store'));
    clock = new FixedClock(NOW);
    lines = [];
    ca = new AriCa(windowAt(48, 50));
    ({ bundle } = await storeStagingCert({
      store,
      spec: SPEC,
      directoryUrl: STAGING,
      issuedBy: new FixedClock(new Date(Date.parse(NOW) - DAY)),
      issuedAt: NOW,
    }));
  });

  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  it('renews at a time drawn in the window, shows it came from ARI, and keeps it in the store', async () => {
    const st = await reconciler().reconcileOne(SPEC);
    assert.equal(ca.asked, 1);
    assert.equal(st.renewSource, 'ari');
    assert.equal(st.renewAt, new Date(Date.parse(NOW) + 49 * H).toISOString());
    assert.equal(st.explanationUrl, 'https://ca.test/why');
    assert.equal(ca.orders, 0);
    const saved = JSON.parse((await store.load(ariKey(SPEC.name, 'staging')))!.toString()) as {
      renewAt: string;
      nextCheck: string;
    };
    assert.equal(saved.renewAt, st.renewAt);
    assert.equal(saved.nextCheck, new Date(Date.parse(NOW) + H).toISOString());
    assert.equal(st.ariCheckAt, saved.nextCheck);
  });

  it('asks the daemon again only after the Retry-After, keeping the drawn time', async () => {
    const r = reconciler();
    const first = await r.reconcileOne(SPEC);
    clock.advance(H - 1000);
    await r.reconcileOne(SPEC);
    assert.equal(ca.asked, 1, 'not asked before the Retry-After');
    clock.advance(1000);
    const st = await r.reconcileOne(SPEC);
    assert.equal(ca.asked, 2);
    assert.equal(st.renewAt, first.renewAt);
  });

  it('asks afresh in a new process (acme-sidecar once), whatever the stored next check', async () => {
    await reconciler().reconcileOne(SPEC);
    await reconciler().reconcileOne(SPEC);
    assert.equal(ca.asked, 2);
  });

  it('renews at the next pass when the window is in the past (a revocation)', async () => {
    ca.answer = windowAt(-2, -1);
    const st = await reconciler().reconcileOne(SPEC);
    assert.equal(ca.orders, 1, 'the renewal was ordered');
    assert.deepEqual(ca.replacing, [bundle.cert], 'as a replacement of the served certificate');
    assert.equal(st.reason, 'NearingExpiry');
  });

  it('falls back to the lifetime rule on a malformed answer, with one warning over many passes', async () => {
    ca.answer = { kind: 'problem', problem: 'the answer is not a JSON object' };
    const r = reconciler();
    let st = await r.reconcileOne(SPEC);
    for (let i = 0; i < 3; i++) {
      clock.advance(6 * H);
      st = await r.reconcileOne(SPEC);
    }
    assert.equal(ca.asked, 4);
    assert.equal(ca.orders, 0, 'no renewal');
    assert.equal(st.renewSource, 'lifetime');
    const warnings = lines.filter((l) => l.level === 'warn');
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(String(warnings[0]?.fields.problem), /not a JSON object/);
  });

  it('uses the lifetime rule when the CA offers no ARI, and stores nothing', async () => {
    ca.answer = { kind: 'unsupported' };
    const st = await reconciler().reconcileOne(SPEC);
    assert.equal(st.renewSource, 'lifetime');
    assert.equal(await store.load(ariKey(SPEC.name, 'staging')), undefined);
  });

  describe('a certificate issued in this pass', () => {
    const SIX_H = 6 * H;
    const stored = async () =>
      JSON.parse((await store.load(ariKey(SPEC.name, 'staging')))!.toString()) as {
        serial: string;
        renewAt?: string;
      };
    beforeEach(() => {
      ca.issuing = new SelfSignedIssuer(clock, 90);
    });

    it('is not asked about at issuance: the lifetime rule, the first check 6 h later', async () => {
      const st = await reconciler().reconcileOne(SPEC, undefined, { force: true });
      assert.equal(ca.orders, 1, 'issued');
      assert.notEqual(st.serial, undefined);
      assert.equal(ca.asked, 1, 'asked about the certificate served before the pass only');
      assert.notEqual((await stored()).serial, st.serial, 'no record for the new certificate');
      assert.equal(st.renewSource, 'lifetime');
      assert.equal(
        st.explanationUrl,
        undefined,
        "the older certificate's explanation is not shown",
      );
      assert.equal(st.ariCheckAt, new Date(Date.parse(NOW) + SIX_H).toISOString());
    });

    it('the daemon asks at its first check, not at a pass before it, and then shows the ARI time', async () => {
      const r = reconciler();
      const issued = await r.reconcileOne(SPEC, undefined, { force: true });
      clock.advance(SIX_H - 1000);
      let st = await r.reconcileOne(SPEC);
      assert.equal(ca.asked, 1, 'a pass before the first check does not ask');
      assert.equal(st.renewSource, 'lifetime');
      assert.equal(st.ariCheckAt, new Date(Date.parse(NOW) + SIX_H).toISOString());
      clock.advance(1000);
      st = await r.reconcileOne(SPEC);
      assert.equal(ca.asked, 2, 'asked at the first check');
      assert.equal((await stored()).serial, issued.serial);
      assert.equal(st.renewSource, 'ari');
      assert.equal(st.renewAt, new Date(Date.parse(NOW) + 49 * H).toISOString());
      assert.equal(st.ariCheckAt, new Date(Date.parse(NOW) + SIX_H + H).toISOString());
      assert.equal(ca.orders, 1, 'no renewal');
    });

    it('the daemon remembers one serial per certificate, however often renewed, and none once it left', async () => {
      const r = reconciler();
      const tracker = (r as unknown as { ari: AriTracker }).ari;
      const serials = new Set<string | undefined>();
      for (let i = 0; i < 5; i++) {
        serials.add((await r.reconcileOne(SPEC, undefined, { force: true })).serial);
        clock.advance(SIX_H);
        await r.reconcileOne(SPEC);
      }
      assert.equal(serials.size, 5, 'five renewals, five serials');
      assert.equal(ca.asked, 6, 'each new certificate asked about once at its first check');
      assert.equal(tracker.size, 1, 'the serials renewed away are forgotten');
      await r.reconcileAll([]);
      assert.equal(tracker.size, 0, 'a certificate that left the configuration is forgotten');
    });

    it('a new process (acme-sidecar once) asks about it at once', async () => {
      const issued = await reconciler().reconcileOne(SPEC, undefined, { force: true });
      assert.equal(ca.asked, 1);
      const st = await reconciler().reconcileOne(SPEC);
      assert.equal(ca.asked, 2);
      assert.equal((await stored()).serial, issued.serial);
      assert.equal(st.renewSource, 'ari');
    });
  });
});
