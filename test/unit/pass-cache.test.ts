import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeCattle, type FakeCattle } from '../../devenv/fake-cattle.js';
import type { Issuer } from '../../src/acme/issuer.js';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import type { LiveTarget } from '../../src/domain/status.js';
import type { CertBundle, CertMeta, CertSpec, StoredCert } from '../../src/domain/types.js';
import type { RenewalInfoAnswer } from '../../src/lifecycle/ari.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import { sameSerial } from '../../src/lifecycle/platform-policy.js';
import type { Platform, PlatformCopy } from '../../src/platform/platform.js';
import { CattleClient } from '../../src/platform/rancher/cattle-client.js';
import { RancherPlatform, ownerDescription } from '../../src/platform/rancher/rancher-platform.js';
import { Reconciler } from '../../src/reconcile/reconciler.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { storedKey } from '../../src/store/keys.js';
import { watchStore } from '../../src/store/fs-watch.js';
import { PassReadCache } from '../../src/store/pass-cache.js';
import { storedCertKind } from '../../src/store/record-kinds.js';
import { RecordReader } from '../../src/store/records.js';
import type { CertStore } from '../../src/store/store.js';
import { silentLogger } from '../../src/util/log.js';
import {
  type Line,
  recordingLogger,
  staticPlatform,
  storeStagingCert,
} from '../support/reconcile.js';
import { CountingStore } from '../support/counting-store.js';

describe('PassReadCache: each record read once per pass', () => {
  let root: string;
  let counting: CountingStore;
  let cache: PassReadCache;

  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'pass-cache-'));
    counting = new CountingStore(new FsCertStore(root));
    cache = new PassReadCache(counting);
    await counting.store('certs/a/staging.json', 'one');
  });
  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  it('outside a pass every load reaches the store', async () => {
    await cache.load('certs/a/staging.json');
    await cache.load('certs/a/staging.json');
    assert.equal(counting.loads.get('certs/a/staging.json'), 2);
    assert.equal(cache.reads, 2);
  });

  it('in a pass a key is read once, missing keys included, and every reader gets the same bytes', async () => {
    cache.begin();
    const [x, y] = await Promise.all([
      cache.load('certs/a/staging.json'),
      cache.load('certs/a/staging.json'),
    ]);
    const z = await cache.load('certs/a/staging.json');
    assert.equal(await cache.load('certs/a/production.json'), undefined);
    assert.equal(await cache.load('certs/a/production.json'), undefined);
    assert.equal(x?.toString(), 'one');
    assert.ok(x === y && y === z, 'the same Buffer');
    assert.equal(counting.loads.get('certs/a/staging.json'), 1);
    assert.equal(counting.loads.get('certs/a/production.json'), 1);
    assert.equal(cache.reads, 2);
    cache.end();
    await cache.load('certs/a/staging.json');
    assert.equal(counting.loads.get('certs/a/staging.json'), 2, 'after the pass: read again');
  });

  it('our own write, delete and quarantine are seen by the next load of the pass', async () => {
    cache.begin();
    await cache.load('certs/a/staging.json');
    await cache.store('certs/a/staging.json', 'two');
    assert.equal((await cache.load('certs/a/staging.json'))?.toString(), 'two');
    await cache.delete('certs/a/staging.json');
    assert.equal(await cache.load('certs/a/staging.json'), undefined);
    await cache.store('certs/a/staging.json', 'three');
    assert.equal((await cache.load('certs/a/staging.json'))?.toString(), 'three');
    const aside = await cache.quarantine('certs/a/staging.json', new Date('2026-12-02T12:00:00Z'));
    assert.ok(aside);
    assert.equal(await cache.load('certs/a/staging.json'), undefined);
    assert.equal((await cache.load(aside))?.toString(), 'three');
  });

  it('a write that races a load in flight is not hidden by it', async () => {
    cache.begin();
    const inFlight = cache.load('certs/a/staging.json');
    await cache.store('certs/a/staging.json', 'two');
    await inFlight;
    assert.equal((await cache.load('certs/a/staging.json'))?.toString(), 'two');
  });

  it('taking a lock drops what the pass read: the holder re-reads from the store', async () => {
    cache.begin();
    await cache.load('certs/a/staging.json');
    // Another process writes behind our back.
    await counting.inner.store('certs/a/staging.json', 'theirs');
    assert.equal((await cache.load('certs/a/staging.json'))?.toString(), 'one');
    await cache.lock('cert-a');
    try {
      assert.equal((await cache.load('certs/a/staging.json'))?.toString(), 'theirs');
    } finally {
      await cache.unlock('cert-a');
    }
  });

  it('a failed load is not kept: the next load tries the store again', async () => {
    cache.begin();
    counting.failNext = true;
    await assert.rejects(cache.load('certs/a/staging.json'), /EIO/);
    assert.equal((await cache.load('certs/a/staging.json'))?.toString(), 'one');
    assert.equal(counting.loads.get('certs/a/staging.json'), 2);
  });
});

const NOW = '2026-06-01T00:00:00Z';
const DAY = 24 * 3600_000;
const STAGING = 'https://staging.test/dir';
const SPEC: CertSpec = { name: 'www', domains: ['www.example.com'], source: 'test' };

describe('reconcile: a settled certificate, one pass', () => {
  let root: string;
  let counting: CountingStore;
  let bundle: CertBundle;
  let meta: CertMeta;
  let platformReads: number;
  let lines: Line[];

  const ca: Issuer = {
    phase: 'staging',
    directoryUrl: STAGING,
    issue: () => Promise.reject(new Error('no orders in this test')),
    renewalInfo: (): Promise<RenewalInfoAnswer> =>
      Promise.resolve({
        kind: 'info',
        info: {
          window: {
            start: new Date(Date.parse(NOW) + 30 * DAY),
            end: new Date(Date.parse(NOW) + 31 * DAY),
          },
        },
        retryAfterS: 6 * 3600,
      }),
  };

  /** Holds a copy of our certificate, as Rancher would. */
  const platform = (): Platform => ({
    ...staticPlatform([SPEC]),
    name: 'holder',
    holdsCertificates: true,
    read: (): Promise<PlatformCopy> => {
      platformReads++;
      return Promise.resolve({
        id: '1c1',
        serial: meta.serial,
        notAfter: meta.notAfter,
        ours: true,
      });
    },
    push: () => Promise.reject(new Error('nothing to push')),
  });

  const reconciler = (store: CertStore) =>
    new Reconciler({
      store,
      live: {
        write: () => Promise.reject(new Error('nothing to write')),
        read: () => Promise.resolve(bundle),
        path: () => ({ dir: '', cert: '', chain: '', fullchain: '', privkey: '' }),
      } satisfies LiveTarget,
      issuers: {
        'self-signed': new SelfSignedIssuer(new FixedClock(NOW)),
        staging: ca,
        production: {
          phase: 'production',
          directoryUrl: 'https://prod.test/dir',
          issue: () => Promise.reject(new Error('the production CA must not be asked')),
        },
      },
      platform: platform(),
      clock: new FixedClock(NOW),
      log: recordingLogger(lines),
      random: () => 0.5,
      settings: {
        target: 'staging',
        keyType: 'ecdsa-p256',
        directories: { staging: STAGING, production: 'https://prod.test/dir' },
      },
    });

  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'pass-cache-reconcile-'));
    counting = new CountingStore(new FsCertStore(root));
    platformReads = 0;
    lines = [];
    ({ bundle, meta } = await storeStagingCert({
      store: counting,
      spec: SPEC,
      directoryUrl: STAGING,
      issuedBy: new FixedClock(new Date(Date.parse(NOW) - DAY)),
      issuedAt: NOW,
    }));
  });
  afterEach(() => fs.rm(root, { recursive: true, force: true }));

  /** Two passes of one daemon; the loads of the second (idle) one, per key. */
  async function idlePassLoads(cached: boolean): Promise<Map<string, number>> {
    const cache = new PassReadCache(counting);
    const r = reconciler(cache);
    for (let pass = 1; pass <= 2; pass++) {
      counting.reset();
      if (cached) cache.begin();
      const st = await r.reconcileOne(SPEC);
      if (cached) cache.end();
      assert.equal(
        st.ready,
        true,
        `pass ${pass}: ${JSON.stringify(st.lastError)} ${JSON.stringify(lines)}`,
      );
      assert.equal(st.reason, 'Valid');
    }
    return new Map(counting.loads);
  }

  it('without the pass cache, the idle pass reads some records several times', async () => {
    // What the cache is for: if this stops holding, the next test proves nothing.
    const loads = await idlePassLoads(false);
    assert.ok(
      [...loads.values()].some((n) => n > 1),
      JSON.stringify(Object.fromEntries(loads)),
    );
  });

  it('with it, the idle pass reads each record at most once, and reads the platform once', async () => {
    const loads = await idlePassLoads(true);
    assert.ok(loads.size > 0);
    for (const [key, n] of loads) assert.equal(n, 1, `${key} read ${n} times`);
    assert.deepEqual([...loads.keys()].sort(), [
      'certs/www/production.ari.json',
      'certs/www/production.json',
      'certs/www/self-signed.json',
      'certs/www/staging.ari.json',
      'certs/www/staging.json',
    ]);
    // Pass 1 and pass 2: one platform read each (the platform plan).
    assert.equal(platformReads, 2);
  });
});

describe('reconcile: a settled certificate, passes of one daemon with a watch on the state directory', () => {
  // The same certificate as above, through the same reconciler, with the
  // records kept across passes (store/fs-watch.ts).
  it('the idle passes after the first read nothing from the store; a record corrupted on disk is read at the next pass', async () => {
    const root = await fs.mkdtemp(join(tmpdir(), 'pass-cache-watched-'));
    const counting = new CountingStore(new FsCertStore(root));
    const clock = new FixedClock(NOW);
    const { bundle } = await storeStagingCert({
      store: counting,
      spec: SPEC,
      directoryUrl: STAGING,
      issuedBy: new FixedClock(new Date(Date.parse(NOW) - DAY)),
      issuedAt: NOW,
    });
    const cache = new PassReadCache(counting);
    const feed = watchStore(root);
    assert.ok(feed);
    cache.follow(feed);
    const r = new Reconciler({
      store: cache,
      live: {
        write: () => Promise.reject(new Error('nothing to write')),
        read: () => Promise.resolve(bundle),
        path: () => ({ dir: '', cert: '', chain: '', fullchain: '', privkey: '' }),
      } satisfies LiveTarget,
      issuers: {
        'self-signed': new SelfSignedIssuer(clock),
        staging: {
          phase: 'staging',
          directoryUrl: STAGING,
          issue: () => Promise.reject(new Error('no orders in this test')),
          renewalInfo: (): Promise<RenewalInfoAnswer> =>
            Promise.resolve({
              kind: 'info',
              info: {
                window: {
                  start: new Date(Date.parse(NOW) + 30 * DAY),
                  end: new Date(Date.parse(NOW) + 31 * DAY),
                },
              },
              retryAfterS: 6 * 3600,
            }),
        },
        production: {
          phase: 'production',
          directoryUrl: 'https://prod.test/dir',
          issue: () => Promise.reject(new Error('the production CA must not be asked')),
        },
      },
      platform: {
        name: 'static',
        holdsCertificates: false,
        discover: () => Promise.resolve({ specs: [SPEC], problems: [] }),
        read: () => Promise.resolve(undefined),
        push: () => Promise.resolve(),
      },
      clock,
      log: silentLogger,
      random: () => 0.5,
      settings: {
        target: 'staging',
        keyType: 'ecdsa-p256',
        directories: { staging: STAGING, production: 'https://prod.test/dir' },
      },
    });
    const onePass = async () => {
      counting.reset();
      await cache.begin();
      try {
        return await r.reconcileOne(SPEC);
      } finally {
        cache.end();
      }
    };
    try {
      const perPass: number[] = [];
      for (let pass = 1; pass <= 4; pass++) {
        const st = await onePass();
        assert.equal(st.ready, true, `pass ${pass}: ${JSON.stringify(st.lastError)}`);
        perPass.push(counting.total());
      }
      // Pass 1 reads the 5 records; pass 2 may read again what pass 1 wrote (the ARI record).
      assert.ok((perPass[0] ?? 0) >= 5, JSON.stringify(perPass));
      assert.deepEqual(perPass.slice(2), [0, 0], `loads per pass: ${JSON.stringify(perPass)}`);
      // By hand, behind the daemon's back: the next pass reads it, finds it corrupt, heals.
      await fs.writeFile(join(root, 'certs', SPEC.name, 'staging.json'), 'garbage');
      const st = await onePass();
      assert.ok((counting.loads.get(storedKey(SPEC.name, 'staging')) ?? 0) >= 1);
      assert.equal(st.localState?.[0]?.code, 'STORE_CORRUPT', JSON.stringify(st));
    } finally {
      cache.unfollow();
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});

describe('RancherPlatform: the certificates collection read once per pass', () => {
  let cattle: FakeCattle;
  let platform: RancherPlatform;
  let root: string;
  const names = ['a.example', 'b.example', 'c.example'];
  const copies = new Map<string, StoredCert>();

  before(async () => {
    cattle = await startFakeCattle();
    root = await fs.mkdtemp(join(tmpdir(), 'pass-cache-rancher-'));
    const store = new FsCertStore(root);
    for (const name of names) {
      const copy = await storeStagingCert({
        store,
        spec: { name, domains: [name], source: 'test' },
        directoryUrl: STAGING,
        issuedBy: new FixedClock(NOW),
        issuedAt: NOW,
      });
      copies.set(name, copy);
      const { bundle } = copy;
      cattle.addCertificate({
        name,
        cert: bundle.cert,
        key: bundle.privkey,
        description: ownerDescription('staging', [name], name),
      });
    }
    platform = new RancherPlatform(
      new CattleClient({
        url: cattle.url,
        accessKey: cattle.accessKey,
        secretKey: cattle.secretKey,
        timeoutMs: 5000,
        attempts: 1,
        log: silentLogger,
      }),
      { domains: async () => '', log: silentLogger, transitionTimeoutMs: 10_000 },
    );
  });
  after(async () => {
    await cattle.close();
    await fs.rm(root, { recursive: true, force: true });
  });

  const certificateGets = (from: number) =>
    cattle.requests
      .slice(from)
      .filter((r) => r.method === 'GET' && r.path.endsWith('/certificates'))
      .map((r) => (new URLSearchParams(r.query).has('name') ? 'by name' : 'list'));

  it('outside a pass, each read asks for its one name', async () => {
    const mark = cattle.requests.length;
    for (const n of names) assert.equal((await platform.read(n))?.ours, true);
    assert.deepEqual(certificateGets(mark), ['by name', 'by name', 'by name']);
  });

  it('in a pass, one listing answers every read, absent names included', async () => {
    const mark = cattle.requests.length;
    platform.beginPass();
    try {
      const got = await Promise.all([...names, 'absent.example'].map((n) => platform.read(n)));
      for (const [i, n] of names.entries()) {
        // Cattle's decimal serial loses a leading zero nibble: compared as numbers.
        assert.ok(
          sameSerial(got[i]?.serial, copies.get(n)?.meta.serial),
          `${got[i]?.serial} ${copies.get(n)?.meta.serial}`,
        );
        assert.equal(got[i]?.ours, true);
      }
      assert.equal(got[3], undefined);
      // Case-insensitive, as Cattle names are.
      const upper = (await platform.read('A.EXAMPLE'))?.serial;
      assert.ok(sameSerial(upper, copies.get('a.example')?.meta.serial), String(upper));
    } finally {
      platform.endPass();
    }
    assert.deepEqual(certificateGets(mark), ['list']);
  });

  it('a name pushed in the pass is read afresh, the others still from the listing', async () => {
    platform.beginPass();
    try {
      await platform.read('a.example');
      const a = copies.get('a.example') as StoredCert;
      const before = await platform.read('a.example');
      await platform.push(a, before);
      const mark = cattle.requests.length;
      await platform.read('a.example');
      await platform.read('b.example');
      assert.deepEqual(certificateGets(mark), ['by name']);
    } finally {
      platform.endPass();
    }
  });
});

describe('RecordReader: a certificate checked in full once per content', () => {
  it('skips only the key and chain checks for bytes it verified; the shape and phase are checked every time', async () => {
    const root = await fs.mkdtemp(join(tmpdir(), 'verdicts-'));
    try {
      const store = new FsCertStore(root);
      const clock = new FixedClock(NOW);
      const reader = new RecordReader(store, clock, silentLogger);
      const { meta } = await storeStagingCert({
        store,
        spec: SPEC,
        directoryUrl: STAGING,
        issuedBy: clock,
        issuedAt: NOW,
      });
      const bytes = await store.load(storedKey(SPEC.name, 'staging'));
      assert.ok(bytes);
      const first = await reader.read(storedKey(SPEC.name, 'staging'), storedCertKind('staging'));
      const again = await reader.read(storedKey(SPEC.name, 'staging'), storedCertKind('staging'));
      assert.equal(first?.meta.serial, meta.serial);
      assert.deepEqual(again, first);
      // The same verified bytes under the production key: not a production certificate.
      await store.store(storedKey(SPEC.name, 'production'), bytes);
      assert.equal(
        await reader.read(storedKey(SPEC.name, 'production'), storedCertKind('production'), {
          cert: SPEC.name,
        }),
        undefined,
      );
      assert.match(reader.take(SPEC.name)[0]?.message ?? '', /meta\.phase is "staging"/);
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});
