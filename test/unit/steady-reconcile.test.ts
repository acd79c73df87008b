import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Issuer } from '../../src/acme/issuer.js';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { LiveDir } from '../../src/deploy/live-dir.js';
import { watchLive, type LiveWatch } from '../../src/deploy/live-watch.js';
import type { PlatformCopy } from '../../src/domain/status.js';
import type { CertBundle, CertSpec } from '../../src/domain/types.js';
import type { RenewalInfoAnswer } from '../../src/lifecycle/ari.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import type { Platform } from '../../src/platform/platform.js';
import { Reconciler } from '../../src/reconcile/reconciler.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { watchStore } from '../../src/store/fs-watch.js';
import { ariKey, storedKey } from '../../src/store/keys.js';
import { PassReadCache } from '../../src/store/pass-cache.js';
import { recordingLogger, storeStagingCert, type Line } from '../support/reconcile.js';

const NOW = '2026-06-01T00:00:00Z';
const H = 3600_000;
const DAY = 24 * H;
const STAGING = 'https://staging.test/dir';
const PROD = 'https://prod.test/dir';
const SPEC: CertSpec = { name: 'www', domains: ['www.example.com'], source: 'test' };
const OTHER: CertSpec = { name: 'api', domains: ['api.example.com'], source: 'test' };

/** Staging CA: refuses orders, answers renewalInfo with a window far ahead (Retry-After 6 h). */
class Ca implements Issuer {
  readonly phase = 'staging' as const;
  readonly directoryUrl = STAGING;
  asked = 0;
  answer: RenewalInfoAnswer = {
    kind: 'info',
    info: {
      window: {
        start: new Date(Date.parse(NOW) + 40 * DAY),
        end: new Date(Date.parse(NOW) + 41 * DAY),
      },
    },
    retryAfterS: 6 * 3600,
  };
  issue(): Promise<CertBundle> {
    return Promise.reject(new Error('no orders in this test'));
  }
  renewalInfo(): Promise<RenewalInfoAnswer> {
    this.asked += 1;
    return Promise.resolve(this.answer);
  }
}

/**
 * The idle shortcut (src/reconcile/steady.ts) in the daemon's setting: a
 * real file store behind the pass cache with its watch, a real live/ with
 * its watch, a platform that holds copies. A settled certificate is not
 * gathered again while nothing changed; each change below makes the next
 * pass do the full work again.
 */
describe('reconcile: the idle shortcut, and every change that ends it', () => {
  let root: string;
  let fsStore: FsCertStore;
  let store: PassReadCache;
  let live: LiveDir;
  let liveWatch: LiveWatch;
  let clock: FixedClock;
  let ca: Ca;
  let lines: Line[];
  let reconciler: Reconciler;
  let specs: CertSpec[];
  /** The platform's copies by name; replacing an object is a change there. */
  let copies: Map<string, PlatformCopy>;
  let pushes: number;
  /** Certificates gathered (full work) in the last pass. */
  let gathered: string[];
  let bundles: Map<string, CertBundle>;
  /** Set: the platform answers nothing (Rancher down): every read rejects. */
  let platformDown: boolean;
  /**
   * Set: copyVersion answers at hand (a plain value, as Rancher's once its
   * listing is read); else through a promise (before the listing is read).
   */
  let copyAtHand: boolean;
  const down = () => Promise.reject(new Error('platform unreachable'));
  /** A platform whose copy is answered at once, by throwing. */
  const downAtOnce = (): never => {
    throw new Error('platform unreachable');
  };

  const platform: Platform = {
    name: 'test',
    holdsCertificates: true,
    discover: () => Promise.resolve({ specs, problems: [] }),
    read: (name) => (platformDown ? down() : Promise.resolve(copies.get(name))),
    copyVersion: (name) =>
      platformDown
        ? copyAtHand
          ? downAtOnce()
          : down()
        : copyAtHand
          ? (copies.get(name) ?? null)
          : Promise.resolve(copies.get(name) ?? null),
    push: (cert) => {
      pushes += 1;
      copies.set(cert.meta.name, {
        serial: cert.meta.serial,
        notAfter: cert.meta.notAfter,
        ours: true,
      });
      return Promise.resolve();
    },
  };

  const makeReconciler = (
    over: { keyType?: 'ecdsa-p256' | 'rsa-2048'; concurrency?: number } = {},
  ) => {
    const r = new Reconciler({
      store,
      live,
      issuers: {
        'self-signed': new SelfSignedIssuer(clock),
        staging: ca,
        production: {
          phase: 'production',
          directoryUrl: PROD,
          issue: () => Promise.reject(new Error('no production orders in this test')),
        },
      },
      platform,
      clock,
      log: recordingLogger(lines),
      random: () => 0.5,
      settings: {
        target: 'staging',
        keyType: over.keyType ?? 'ecdsa-p256',
        directories: { staging: STAGING, production: PROD },
        ...(over.concurrency !== undefined && { concurrency: over.concurrency }),
      },
    });
    const gather = r.gather.bind(r);
    r.gather = (spec) => {
      gathered.push(spec.name);
      return gather(spec);
    };
    return r;
  };

  /** One pass as the daemon runs it (app/pass.ts): events first, then every certificate. */
  const pass = async (opts: { r?: Reconciler } = {}) => {
    gathered = [];
    await new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
    await store.begin();
    try {
      const statuses = await (opts.r ?? reconciler).reconcileAll(specs);
      for (const s of statuses) assert.equal(s.lastError, undefined, `${s.name}: no failure`);
      return statuses;
    } finally {
      store.end();
    }
  };

  /** Waits (bounded) until the watches have seen a change of live/<name>. */
  const untilLiveUnvouched = async (name: string) => {
    const deadline = Date.now() + 5000;
    while (live.kept(name) !== undefined) {
      assert.ok(Date.now() < deadline, `the live/ watch saw ${name} change`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'steady-'));
    fsStore = new FsCertStore(root);
    store = new PassReadCache(fsStore);
    live = new LiveDir(root);
    clock = new FixedClock(NOW);
    ca = new Ca();
    lines = [];
    pushes = 0;
    platformDown = false;
    copyAtHand = false;
    copies = new Map();
    bundles = new Map();
    specs = [SPEC, OTHER];
    for (const spec of specs) {
      const { bundle } = await storeStagingCert({
        store: fsStore,
        spec,
        directoryUrl: STAGING,
        issuedBy: new FixedClock(new Date(Date.parse(NOW) - DAY)),
        issuedAt: NOW,
        days: 90,
      });
      bundles.set(spec.name, bundle);
      await live.write(spec.name, bundle);
    }
    const feed = watchStore(root);
    assert.ok(feed, 'a local filesystem');
    store.follow(feed);
    liveWatch = await watchLive(
      root,
      () => undefined,
      (err) => assert.fail(String(err)),
    );
    live.follow(liveWatch);
    reconciler = makeReconciler();
    // 1: asks the CA, pushes to the platform; 2: settles on what 1 wrote; 3: steady.
    await pass();
    assert.equal(pushes, 2);
    await pass();
    await pass();
    assert.deepEqual(gathered, [], 'settled certificates are not gathered again');
  });
  afterEach(async () => {
    store.unfollow();
    live.follow(undefined);
    liveWatch.close();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('an idle pass gathers nothing, asks nothing, pushes nothing, and reports the same status', async () => {
    const asked = ca.asked;
    const before = structuredClone([...reconciler.status.values()]);
    for (let i = 0; i < 3; i++) await pass();
    assert.deepEqual(gathered, []);
    assert.equal(ca.asked, asked);
    assert.equal(pushes, 2);
    assert.deepEqual([...reconciler.status.values()], before);
    assert.ok(before.every((s) => s.ready));
  });

  for (const atHand of [false, true]) {
    it(`a platform that cannot answer ends the shortcut: the full pass reports it, and the pass does not throw (${atHand ? 'thrown at once' : 'rejected'})`, async () => {
      platformDown = true;
      copyAtHand = atHand;
      gathered = [];
      await store.begin();
      let statuses;
      try {
        statuses = await reconciler.reconcileAll(specs);
      } finally {
        store.end();
      }
      assert.deepEqual(
        [...new Set(gathered)].sort(),
        ['api', 'www'],
        'the full pass, where the error is handled',
      );
      assert.ok(
        statuses.every((st) => st.lastError !== undefined),
        'each certificate reports it',
      );
    });
  }

  const changes: { name: string; change: () => Promise<void>; only?: string[] }[] = [
    {
      name: 'the names wanted change',
      change: () => {
        specs = [{ ...SPEC, domains: ['www.example.com', 'new.example.com'] }, OTHER];
        return Promise.resolve();
      },
      only: ['www'],
    },
    {
      name: 'another profile is wanted',
      change: () => {
        specs = [{ ...SPEC, profile: 'shortlived' }, OTHER];
        return Promise.resolve();
      },
      only: ['www'],
    },
    {
      name: 'another replica or process rewrites the stored certificate',
      change: async () => {
        const raw = (await new FsCertStore(root).load(storedKey('www', 'staging'))) as Buffer;
        await new FsCertStore(root).store(storedKey('www', 'staging'), raw.toString() + '\n');
      },
      only: ['www'],
    },
    {
      name: 'another process rewrites the ARI record',
      change: async () => {
        const raw = (await new FsCertStore(root).load(ariKey('www', 'staging'))) as Buffer;
        await new FsCertStore(root).store(ariKey('www', 'staging'), raw.toString() + '\n');
      },
      only: ['www'],
    },
    {
      name: 'a production record appears (written by another replica)',
      change: async () => {
        const raw = (await new FsCertStore(root).load(storedKey('www', 'staging'))) as Buffer;
        await new FsCertStore(root).store(storedKey('www', 'production'), raw);
      },
      only: ['www'],
    },
    {
      name: 'live/<name> is removed by hand',
      change: async () => {
        await fs.rm(join(root, 'live', 'www'), { recursive: true, force: true });
        await untilLiveUnvouched('www');
      },
      only: ['www'],
    },
    {
      name: 'a file of live/<name> is changed in place',
      change: async () => {
        await fs.appendFile(join(root, 'live', 'www', 'chain.pem'), '\n');
        await untilLiveUnvouched('www');
      },
      only: ['www'],
    },
    {
      name: 'the platform copy changes',
      change: () => {
        copies.set('www', { ...(copies.get('www') as PlatformCopy) });
        return Promise.resolve();
      },
      only: ['www'],
    },
    {
      name: 'the platform copy is deleted',
      change: () => {
        copies.delete('www');
        return Promise.resolve();
      },
      only: ['www'],
    },
    {
      name: "the CA's ARI check time (Retry-After, 6 h) comes",
      change: () => {
        clock.advance(6 * H);
        return Promise.resolve();
      },
    },
    {
      name: 'the time drawn in the ARI window comes',
      change: () => {
        // Past the 6 h checks too: asked again, and the window is due.
        ca.answer = {
          ...(ca.answer as RenewalInfoAnswer & { kind: 'info' }),
          retryAfterS: 90 * 24 * 3600,
        };
        clock.advance(6 * H);
        return Promise.resolve();
      },
    },
    {
      name: 'the platform copy gets within seven days of its expiry',
      change: () => {
        const near = new Date(clock.now().getTime() + 7 * DAY + 1000).toISOString();
        copies.set('www', { ...(copies.get('www') as PlatformCopy), notAfter: near });
        return Promise.resolve();
      },
      only: ['www'],
    },
    {
      name: 'the store watch is lost (the daemon stops following it)',
      change: () => {
        store.unfollow();
        return Promise.resolve();
      },
    },
  ];
  for (const c of changes) {
    for (const atHand of [false, true]) {
      it(`${c.name}: the next pass does the full work again (platform copy ${atHand ? 'at hand' : 'promised'})`, async () => {
        copyAtHand = atHand;
        await c.change();
        await pass().catch(() => undefined);
        assert.deepEqual([...new Set(gathered)].sort(), (c.only ?? ['api', 'www']).sort());
      });
    }
  }

  it('an idle pass makes no promise per certificate when the platform copy is at hand: one certificate or two, the same promises', async () => {
    copyAtHand = true;
    const r = makeReconciler({ concurrency: 1 });
    for (let i = 0; i < 3; i++) await pass({ r });
    const promisesIn = async (wanted: CertSpec[]) => {
      specs = wanted;
      let made = 0;
      const hook = createHook({
        init: (_id, type) => {
          if (type === 'PROMISE') made++;
        },
      }).enable();
      try {
        await pass({ r });
      } finally {
        hook.disable();
      }
      assert.deepEqual(gathered, [], 'the shortcut held');
      return made;
    };
    // The fewest of three passes: a watch's callback in the test process
    // can make promises during one.
    const fewest = async (wanted: CertSpec[]) =>
      Math.min(await promisesIn(wanted), await promisesIn(wanted), await promisesIn(wanted));
    const two = await fewest([SPEC, OTHER]);
    const one = await fewest([SPEC]);
    assert.equal(two, one);
  });

  it('a change of the platform copy that makes it due (expiring in under seven days, later) ends it when that time comes', async () => {
    const soon = new Date(clock.now().getTime() + 8 * DAY).toISOString();
    copies.set('www', { ...(copies.get('www') as PlatformCopy), notAfter: soon });
    await pass();
    assert.deepEqual(gathered, ['www']);
    await pass();
    assert.deepEqual(gathered, [], 'steady again on the new copy');
    clock.advance(DAY + 1000);
    await pass().catch(() => undefined);
    assert.ok((gathered as string[]).includes('www'), 'seven days before the copy expires');
  });

  it('the renewal time (lifetime rule, no ARI) comes: the next pass does the full work', async () => {
    ca.answer = { kind: 'unsupported' };
    clock.advance(6 * H);
    await pass();
    await pass();
    assert.deepEqual(gathered, [], 'steady without ARI');
    // Issued a day before NOW for 90 days: a third left comes 59 days after NOW.
    clock.set(new Date(Date.parse(NOW) + 58 * DAY));
    await pass();
    assert.deepEqual(gathered, [], 'a day before the renewal time');
    clock.set(new Date(Date.parse(NOW) + 60 * DAY));
    await pass().catch(() => undefined);
    assert.deepEqual([...new Set(gathered)].sort(), ['api', 'www']);
  });

  it('a forced renewal does the full work (and orders)', async () => {
    const st = await reconciler.reconcileOne(SPEC, undefined, { force: true });
    assert.equal(st.lastError?.message, 'no orders in this test');
    assert.ok(gathered.includes('www'));
  });

  it('a retry that comes due: a failed certificate is never skipped', async () => {
    await fs.rm(join(root, 'live', 'www'), { recursive: true, force: true });
    await fsStore.delete(storedKey('www', 'staging'));
    await untilLiveUnvouched('www');
    await pass().catch(() => undefined);
    clock.advance(2 * 60_000);
    gathered = [];
    await pass().catch(() => undefined);
    assert.ok(gathered.includes('www'), 'retried when due');
  });

  it('another configuration (a restart with another key type) decides everything afresh', async () => {
    await pass({ r: makeReconciler({ keyType: 'rsa-2048' }) }).catch(() => undefined);
    assert.deepEqual([...new Set(gathered)].sort(), ['api', 'www']);
  });
});
