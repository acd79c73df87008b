import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Issuer } from '../../src/acme/issuer.js';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { LiveDir } from '../../src/deploy/live-dir.js';
import { SidecarError } from '../../src/domain/errors.js';
import type { LiveTarget } from '../../src/domain/status.js';
import type { CertBundle, CertSpec, Phase } from '../../src/domain/types.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import { Reason } from '../../src/lifecycle/reasons.js';
import type { Platform } from '../../src/platform/platform.js';
import { DEFAULT_CONCURRENCY } from '../../src/domain/types.js';
import { MAX_STEPS, Reconciler } from '../../src/reconcile/reconciler.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { backoffKey, storedKey } from '../../src/store/keys.js';
import { type Line, recordingLogger, storeStagingCert } from '../support/reconcile.js';

const NOW = '2026-06-01T00:00:00Z';
const SPEC: CertSpec = { name: 'www', domains: ['www.example.com'], source: 'test' };

/** A live/ that loses every write: the placeholder never appears, so no step settles. */
function forgetfulLive(): LiveTarget & { writes: number } {
  return {
    writes: 0,
    async write(_name: string, _bundle: CertBundle) {
      this.writes += 1;
    },
    async read() {
      return undefined;
    },
    path: (name) => ({
      dir: `/live/${name}`,
      cert: `/live/${name}/cert.pem`,
      chain: `/live/${name}/chain.pem`,
      fullchain: `/live/${name}/fullchain.pem`,
      privkey: `/live/${name}/privkey.pem`,
    }),
  };
}

const notUsed = (phase: Phase): Issuer => ({
  phase,
  directoryUrl: `https://${phase}.test/dir`,
  issue: () => Promise.reject(new Error(`the ${phase} CA must not be asked`)),
});

const staticPlatform: Platform = {
  name: 'static',
  holdsCertificates: false,
  discover: () => Promise.resolve({ specs: [SPEC], problems: [] }),
  read: () => Promise.resolve(undefined),
  push: () => Promise.resolve(),
};

describe('reconcile: a certificate that never settles', () => {
  let root: string;
  let store: FsCertStore;
  let lines: Line[];
  let live: ReturnType<typeof forgetfulLive>;
  let clock: FixedClock;
  let failures: string[];
  let reconciler: Reconciler;

  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'reconciler-'));
    store = new FsCertStore(join(root, 'store'));
    lines = [];
    live = forgetfulLive();
    clock = new FixedClock(NOW);
    failures = [];
    reconciler = new Reconciler({
      store,
      live,
      issuers: {
        'self-signed': new SelfSignedIssuer(clock),
        staging: notUsed('staging'),
        production: notUsed('production'),
      },
      platform: staticPlatform,
      clock,
      log: recordingLogger(lines),
      onFailure: (_name, code) => failures.push(code),
      random: () => 0.5,
      settings: {
        target: 'staging',
        keyType: 'ecdsa-p256',
        directories: { staging: 'https://staging.test/dir', production: 'https://prod.test/dir' },
      },
    });
  });

  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  it('fails with NO_STEADY_STATE after the last step, not ABORTED', async () => {
    const st = await reconciler.reconcileOne(SPEC);
    assert.equal(live.writes, MAX_STEPS);
    assert.equal(st.lastError?.code, 'NO_STEADY_STATE');
    assert.match(st.lastError?.message ?? '', /no steady state after 8 steps \(last: Missing\)/);
    assert.deepEqual(failures, ['NO_STEADY_STATE']);
    assert.equal(st.ready, false);
  });

  it('counts an attempt and sets a retry time', async () => {
    const st = await reconciler.reconcileOne(SPEC);
    assert.equal(st.attempts, 1);
    assert.ok(st.nextRetry, 'a retry time is set');
    assert.ok(new Date(st.nextRetry) > clock.now());
  });

  it('saves the retry schedule in the store', async () => {
    await reconciler.reconcileOne(SPEC);
    const raw = await store.load(backoffKey(SPEC.name));
    assert.ok(raw, 'the schedule is stored');
    const saved = JSON.parse(raw.toString()) as { attempts: number; lastError: { code: string } };
    assert.equal(saved.attempts, 1);
    assert.equal(saved.lastError.code, 'NO_STEADY_STATE');
  });

  it('logs the failure at error, with its code and attempt', async () => {
    await reconciler.reconcileOne(SPEC);
    const failed = lines.filter((l) => l.msg === 'certificate step failed');
    assert.equal(failed.length, 1);
    assert.equal(failed[0]?.level, 'error');
    assert.equal(failed[0]?.fields.code, 'NO_STEADY_STATE');
    assert.equal(failed[0]?.fields.attempt, 1);
    assert.equal(failed[0]?.fields.cert, 'www');
  });

  it('waits for the retry time instead of trying again at the next pass', async () => {
    await reconciler.reconcileOne(SPEC);
    const st = await reconciler.reconcileOne(SPEC);
    assert.equal(live.writes, MAX_STEPS, 'nothing was tried the second time');
    assert.equal(st.reason, 'Backoff');
    assert.equal(st.attempts, 1);
  });

  it('counts a second attempt once the retry time has come', async () => {
    const first = await reconciler.reconcileOne(SPEC);
    clock.set(first.nextRetry ?? NOW);
    const st = await reconciler.reconcileOne(SPEC);
    assert.equal(live.writes, 2 * MAX_STEPS);
    assert.equal(st.attempts, 2);
  });
});

describe('reconcile: shutdown', () => {
  it('is ABORTED: no attempt counted, no schedule saved, logged at info', async () => {
    const root = await fs.mkdtemp(join(tmpdir(), 'reconciler-'));
    try {
      const store = new FsCertStore(join(root, 'store'));
      const lines: Line[] = [];
      const clock = new FixedClock(NOW);
      const reconciler = new Reconciler({
        store,
        live: forgetfulLive(),
        issuers: {
          'self-signed': new SelfSignedIssuer(clock),
          staging: notUsed('staging'),
          production: notUsed('production'),
        },
        platform: staticPlatform,
        clock,
        log: recordingLogger(lines),
        settings: {
          target: 'staging',
          keyType: 'ecdsa-p256',
          directories: { staging: 'https://staging.test/dir', production: 'https://p.test/dir' },
        },
      });
      const stop = new AbortController();
      stop.abort();
      const st = await reconciler.reconcileOne(SPEC, stop.signal);
      assert.equal(st.lastError?.code, 'ABORTED');
      assert.equal(st.attempts, 0);
      assert.equal(st.nextRetry, undefined);
      assert.equal(await store.load(backoffKey(SPEC.name)), undefined);
      const failed = lines.find((l) => l.msg === 'certificate step failed');
      assert.equal(failed?.level, 'info');
      assert.equal(st.reason, Reason.Missing);
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});

describe('reconcile: a retry schedule belongs to the profile it failed under', () => {
  let root: string;
  let store: FsCertStore;
  let clock: FixedClock;
  let live: ReturnType<typeof forgetfulLive>;

  /** A reconciler as a new process would build it (the schedule is read afresh). */
  function reconcilerWith(profile?: string): Reconciler {
    return new Reconciler({
      store,
      live,
      issuers: {
        'self-signed': new SelfSignedIssuer(clock),
        staging: notUsed('staging'),
        production: notUsed('production'),
      },
      platform: staticPlatform,
      clock,
      log: recordingLogger([]),
      random: () => 0.5,
      settings: {
        target: 'staging',
        keyType: 'ecdsa-p256',
        ...(profile !== undefined && { profile }),
        directories: { staging: 'https://staging.test/dir', production: 'https://prod.test/dir' },
      },
    });
  }

  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'reconciler-'));
    store = new FsCertStore(join(root, 'store'));
    clock = new FixedClock(NOW);
    live = forgetfulLive();
  });
  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  it('keeps waiting after a restart under the same ACME_PROFILE', async () => {
    await reconcilerWith('short').reconcileOne(SPEC);
    const st = await reconcilerWith('short').reconcileOne(SPEC);
    assert.equal(st.reason, 'Backoff');
    assert.equal(st.attempts, 1);
  });

  it('starts afresh once ACME_PROFILE is changed', async () => {
    await reconcilerWith('nope').reconcileOne(SPEC);
    const st = await reconcilerWith('short').reconcileOne(SPEC);
    assert.notEqual(st.reason, 'Backoff');
    assert.equal(st.attempts, 1, 'one new attempt, the old one forgotten');
  });

  it('starts afresh once a label profile is changed', async () => {
    await reconcilerWith().reconcileOne({ ...SPEC, profile: 'nope', profileFrom: 'svc:label' });
    const st = await reconcilerWith().reconcileOne({
      ...SPEC,
      profile: 'short',
      profileFrom: 'svc:label',
    });
    assert.notEqual(st.reason, 'Backoff');
  });

  it('starts afresh in a running daemon once a label profile is changed', async () => {
    const r = reconcilerWith();
    await r.reconcileOne({ ...SPEC, profile: 'nope', profileFrom: 'svc:label' });
    const same = await r.reconcileOne({ ...SPEC, profile: 'nope', profileFrom: 'svc:label' });
    assert.equal(same.reason, 'Backoff');
    const st = await r.reconcileOne({ ...SPEC, profile: 'short', profileFrom: 'svc:label' });
    assert.notEqual(st.reason, 'Backoff');
    assert.equal(st.profile, 'short');
  });

  it('still applies a schedule saved before profiles when none is set', async () => {
    await reconcilerWith().reconcileOne(SPEC);
    const saved = JSON.parse((await store.load(backoffKey(SPEC.name)))!.toString()) as {
      context: string;
    };
    assert.doesNotMatch(saved.context, /profile/);
    const st = await reconcilerWith().reconcileOne(SPEC);
    assert.equal(st.reason, 'Backoff');
  });
});

describe('reconcile: certificates worked on at once (MAX_CONCURRENT_ORDERS)', () => {
  let root: string;
  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  /** The most issue() calls in flight at once over a pass of 20 certificates. */
  async function mostInFlight(concurrency: number | undefined): Promise<number> {
    root = await fs.mkdtemp(join(tmpdir(), 'reconciler-'));
    const clock = new FixedClock(NOW);
    const inner = new SelfSignedIssuer(clock);
    let now = 0;
    let most = 0;
    const slow: Issuer = {
      phase: 'self-signed',
      directoryUrl: 'self-signed',
      async issue(spec, keyType) {
        most = Math.max(most, ++now);
        await new Promise((r) => setTimeout(r, 5));
        try {
          return await inner.issue(spec, keyType);
        } finally {
          now--;
        }
      },
    };
    const specs = Array.from({ length: 20 }, (_, i): CertSpec => ({
      name: `c${i}`,
      domains: [`c${i}.example.com`],
      source: 'test',
    }));
    const reconciler = new Reconciler({
      store: new FsCertStore(join(root, 'store')),
      live: forgetfulLive(),
      issuers: {
        'self-signed': slow,
        staging: notUsed('staging'),
        production: notUsed('production'),
      },
      platform: staticPlatform,
      clock,
      log: recordingLogger([]),
      onFailure: () => {},
      random: () => 0.5,
      settings: {
        target: 'staging',
        keyType: 'ecdsa-p256',
        directories: { staging: 'https://staging.test/dir', production: 'https://prod.test/dir' },
        ...(concurrency !== undefined && { concurrency }),
      },
    });
    await reconciler.reconcileAll(specs);
    return most;
  }

  it('as many as the setting says', async function () {
    this.timeout(20_000);
    assert.equal(await mostInFlight(3), 3);
  });

  it('DEFAULT_CONCURRENCY (8) when unset', async function () {
    this.timeout(20_000);
    assert.equal(DEFAULT_CONCURRENCY, 8);
    assert.equal(await mostInFlight(undefined), DEFAULT_CONCURRENCY);
  });
});

/**
 * /status reads the reconciler's statuses while a pass runs: what it shows
 * of a certificate must match what nginx serves from the moment live/
 * changes, not only once the pass has ended (the Rancher e2e test read a
 * production certificate shown as "none" between a failed push and the
 * end of its pass).
 */
describe('reconcile: the status while the pass runs', () => {
  const STAGING = 'https://staging.test/dir';
  let root: string;

  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'reconciler-status-'));
  });
  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  interface Seen {
    at: string;
    phase: string;
    ready?: true;
    serial?: string;
    renewAt?: string;
  }

  /** A platform that holds copies (its push is `push`); `seen`: the status at each push and failure. */
  function setup(push: () => Promise<void>) {
    const clock = new FixedClock(NOW);
    const store = new FsCertStore(join(root, 'store'));
    const seen: Seen[] = [];
    const note = (at: string) => {
      const st = reconciler.status.get(SPEC.name);
      seen.push({
        at,
        phase: st?.phase ?? '-',
        ...(st?.ready && { ready: true }),
        ...(st?.serial && { serial: st.serial }),
        ...(st?.renewAt && { renewAt: st.renewAt }),
      });
    };
    const platform: Platform = {
      name: 'test',
      holdsCertificates: true,
      discover: () => Promise.resolve({ specs: [SPEC], problems: [] }),
      read: () => Promise.resolve(undefined),
      push: () => {
        note('push');
        return push();
      },
    };
    const reconciler: Reconciler = new Reconciler({
      store,
      live: new LiveDir(join(root, 'state')),
      issuers: {
        'self-signed': new SelfSignedIssuer(clock),
        staging: notUsed('staging'),
        production: notUsed('production'),
      },
      platform,
      clock,
      log: recordingLogger([]),
      onFailure: () => note('failure'),
      random: () => 0.5,
      settings: {
        target: 'staging',
        keyType: 'ecdsa-p256',
        directories: { staging: STAGING, production: 'https://prod.test/dir' },
      },
    });
    const storeCert = (issuedAt: string) =>
      storeStagingCert({
        store,
        spec: SPEC,
        directoryUrl: STAGING,
        issuedBy: new FixedClock(issuedAt),
        issuedAt,
      });
    return { clock, reconciler, seen, storeCert, store };
  }

  it('shows the deployed certificate at the push, and when the failed push is recorded', async () => {
    const { reconciler, seen, storeCert } = setup(() =>
      Promise.reject(new SidecarError('PLATFORM_UNAVAILABLE', 'POST: 503')),
    );
    const { meta } = await storeCert(NOW);
    const st = await reconciler.reconcileOne(SPEC);
    assert.equal(st.lastError?.code, 'PLATFORM_UNAVAILABLE');
    assert.equal(st.phase, 'staging');
    assert.deepEqual(seen, [
      { at: 'push', phase: 'staging', serial: meta.serial },
      { at: 'failure', phase: 'staging', serial: meta.serial },
    ]);
  });

  it("drops the replaced certificate's renewal time when a new one is deployed, and sets the new one at the end", async () => {
    const { clock, reconciler, seen, storeCert } = setup(() => Promise.resolve());
    await storeCert(NOW);
    const first = await reconciler.reconcileOne(SPEC);
    const oldRenewAt = first.renewAt;
    assert.ok(oldRenewAt, 'the first certificate has a renewal time');
    // A newer certificate in the store (another replica ordered it): the next pass deploys it.
    const later = new Date(Date.parse(NOW) + 3 * 24 * 3600_000).toISOString();
    clock.set(later);
    const { meta } = await storeCert(later);
    seen.length = 0;
    const st = await reconciler.reconcileOne(SPEC);
    assert.equal(st.serial, meta.serial);
    // Still ready: nginx served a staging certificate throughout.
    assert.deepEqual(seen, [{ at: 'push', phase: 'staging', ready: true, serial: meta.serial }]);
    assert.ok(st.renewAt && st.renewAt > oldRenewAt, `a later renewal time: ${st.renewAt}`);
  });

  it('shows a placeholder deployed in the pass as not ready, while the pass goes on', async () => {
    const { reconciler, seen, storeCert, store } = setup(() => Promise.resolve());
    await storeCert(NOW);
    assert.equal((await reconciler.reconcileOne(SPEC)).ready, true);
    // The store and live/ lost: a placeholder first, then a staging order (refused here).
    await store.delete(storedKey(SPEC.name, 'staging'));
    await fs.rm(join(root, 'state', 'live'), { recursive: true, force: true });
    seen.length = 0;
    const st = await reconciler.reconcileOne(SPEC);
    assert.equal(st.phase, 'self-signed');
    assert.deepEqual(seen, [{ at: 'failure', phase: 'self-signed', serial: st.serial }]);
  });
});
