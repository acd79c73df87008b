// A certificate the CA issued but the store could not keep (a full disk, a
// lost etcd quorum) is stored at the next attempt instead of ordered again.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Issuer } from '../../src/acme/issuer.js';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { SidecarError } from '../../src/domain/errors.js';
import type { LiveTarget } from '../../src/domain/status.js';
import type { CertBundle, CertMeta, CertSpec, Phase } from '../../src/domain/types.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import { heldCertAnswers, type HeldCert } from '../../src/reconcile/actions.js';
import { Reconciler } from '../../src/reconcile/reconciler.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { storedKey } from '../../src/store/keys.js';
import { type Line, recordingLogger, staticPlatform } from '../support/reconcile.js';

const NOW = '2026-06-01T00:00:00Z';
const STAGING = 'https://staging.test/dir';
const SPEC: CertSpec = { name: 'www', domains: ['www.example.com', 'example.com'], source: 'test' };

describe('heldCertAnswers: an issued, unstored certificate stands in for a new order', () => {
  const meta: CertMeta = {
    name: 'www',
    phase: 'staging',
    domains: ['example.com', 'www.example.com'],
    directoryUrl: STAGING,
    keyType: 'ecdsa-p256',
    notBefore: '2026-05-31T00:00:00Z',
    notAfter: '2026-08-29T00:00:00Z',
    serial: '0A',
    chainVerified: true,
    issuedAt: '2026-05-31T00:00:00Z',
  };
  const held = (m: Partial<CertMeta> = {}, phase: HeldCert['phase'] = 'staging'): HeldCert => ({
    phase,
    meta: { ...meta, ...m },
    bundle: { cert: '', chain: '', fullchain: '', privkey: '' },
  });
  const want = {
    phase: 'staging' as const,
    directoryUrl: STAGING,
    spec: SPEC,
    keyType: 'ecdsa-p256',
  };
  const rows: [string, HeldCert, Partial<typeof want>, string, boolean][] = [
    ['the same order (names in any order)', held(), {}, NOW, true],
    ['another phase', held({}, 'production'), {}, NOW, false],
    ['another CA', held({ directoryUrl: 'https://other.test/dir' }), {}, NOW, false],
    ['a name fewer', held({ domains: ['www.example.com'] }), {}, NOW, false],
    ['another key type', held({ keyType: 'rsa-2048' }), {}, NOW, false],
    ['a profile now wanted', held(), { spec: { ...SPEC, profile: 'shortlived' } }, NOW, false],
    [
      'the profile wanted',
      held({ profile: 'shortlived' }),
      { spec: { ...SPEC, profile: 'shortlived' } },
      NOW,
      true,
    ],
    ['expired', held(), {}, '2026-08-29T00:00:00Z', false],
  ];
  for (const [name, h, w, now, answers] of rows) {
    it(`${answers ? 'answers' : 'does not answer'}: ${name}`, () =>
      assert.equal(heldCertAnswers(h, { ...want, ...w }, new Date(now)), answers));
  }
});

describe('reconcile: the store write after issuance fails', () => {
  let root: string;
  let lines: Line[];

  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'held-cert-'));
    lines = [];
  });
  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  /** A reconciler whose disk is full for the first write of the staging record only. */
  async function setup() {
    const clock = new FixedClock(NOW);
    let failWrites = 1;
    const fsStore = new FsCertStore(join(root, 'store'));
    // A disk that is full for the first write of the staging record only.
    const store = Object.assign(Object.create(fsStore) as FsCertStore, {
      store: (key: string, value: Buffer | string, opts?: { secret?: boolean }) => {
        if (key === storedKey(SPEC.name, 'staging') && failWrites-- > 0) {
          return Promise.reject(new SidecarError('STORE_IO', `cannot write ${key}: ENOSPC`));
        }
        return fsStore.store(key, value, opts);
      },
    });
    let bundle: CertBundle | undefined;
    const live: LiveTarget = {
      write: (_name, b) => {
        bundle = b;
        return Promise.resolve();
      },
      read: () => Promise.resolve(bundle),
      path: () => ({ dir: '', cert: '', chain: '', fullchain: '', privkey: '' }),
    };
    const signer = new SelfSignedIssuer(clock);
    const orders: string[] = [];
    const staging: Issuer = {
      phase: 'staging',
      directoryUrl: STAGING,
      issue: async (spec, keyType) => {
        orders.push(spec.name);
        return signer.issue(spec, keyType);
      },
    };
    const notUsed = (phase: Phase): Issuer => ({
      phase,
      directoryUrl: `https://${phase}.test/dir`,
      issue: () => Promise.reject(new Error(`the ${phase} CA must not be asked`)),
    });
    const reconciler = new Reconciler({
      store,
      live,
      issuers: { 'self-signed': signer, staging, production: notUsed('production') },
      platform: staticPlatform([SPEC]),
      clock,
      log: recordingLogger(lines),
      random: () => 0.5,
      settings: {
        target: 'staging',
        keyType: 'ecdsa-p256',
        directories: { staging: STAGING, production: 'https://prod.test/dir' },
      },
    });

    return { clock, fsStore, orders, reconciler };
  }

  it('stores the certificate already issued at the next attempt, and places no second order', async () => {
    const { clock, fsStore, orders, reconciler } = await setup();
    const first = await reconciler.reconcileOne(SPEC);
    assert.equal(first.lastError?.code, 'STORE_IO');
    assert.deepEqual(orders, ['www']);

    clock.set(first.nextRetry ?? NOW);
    const second = await reconciler.reconcileOne(SPEC);
    assert.equal(second.ready, true, JSON.stringify(second.lastError));
    assert.equal(second.phase, 'staging');
    assert.deepEqual(orders, ['www'], 'the certificate was ordered again');
    assert.ok(
      lines.some((l) => l.msg.startsWith('certificate issued earlier stored now')),
      'the log says why no order was placed',
    );
    const raw = await fsStore.load(storedKey(SPEC.name, 'staging'));
    assert.ok(raw, 'the staging record is in the store');
  });

  it('forgets a held certificate once its name is no longer wanted', async () => {
    const { clock, orders, reconciler } = await setup();
    const first = await reconciler.reconcileOne(SPEC);
    assert.equal(first.lastError?.code, 'STORE_IO');
    await reconciler.reconcileAll([]);
    clock.set(first.nextRetry ?? NOW);
    await reconciler.reconcileAll([SPEC]);
    assert.deepEqual(orders, ['www', 'www'], 'a held certificate (with its key) outlived its name');
  });
});
