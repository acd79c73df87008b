import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LiveDir } from '../../src/deploy/live-dir.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { storedKey } from '../../src/store/keys.js';
import { storedCertKind } from '../../src/store/record-kinds.js';
import { RecordReader } from '../../src/store/records.js';
import { silentLogger } from '../../src/util/log.js';
import { StringPool, pemPool } from '../../src/util/pem-pool.js';
import { oneCertPassRunner } from '../support/pass-runner.js';
import { storeStagingCert } from '../support/reconcile.js';

// Which copy a string is cannot be seen from JavaScript (=== compares
// contents): these tests check that both readers go through the pool and
// that a pass empties it; the bytes saved are in docs/performance.md.
describe('pem-pool: one copy of each PEM the daemon keeps', () => {
  const clock = new FixedClock(new Date('2026-12-03T08:00:00Z'));
  let root: string;
  beforeEach(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'pem-pool-'));
    pemPool.clear();
  });
  afterEach(async () => {
    pemPool.clear();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('StringPool keeps the first of equal strings until cleared', () => {
    const pool = new StringPool();
    const a = ['-----BEGIN', 'CERTIFICATE-----'].join(' ');
    assert.equal(pool.intern(a), a);
    assert.equal(pool.intern(`-----BEGIN ${'CERTIFICATE-----'}`), a);
    assert.equal(pool.size, 1);
    pool.intern('other');
    assert.equal(pool.size, 2);
    pool.clear();
    assert.equal(pool.size, 0);
  });

  it("the store's record and live/'s copy of a certificate share the pool's strings", async () => {
    const store = new FsCertStore(join(root, 'state'));
    const spec = { name: 'a', domains: ['a.test'], source: 'env' as const };
    const { bundle } = await storeStagingCert({
      store,
      spec,
      directoryUrl: 'https://ca.test/dir',
      issuedBy: clock,
      issuedAt: clock.now().toISOString(),
    });
    const distinct = new Set([bundle.cert, bundle.chain, bundle.fullchain, bundle.privkey]).size;
    const live = new LiveDir(join(root, 'served'));
    await live.write('a', bundle);
    pemPool.clear();

    const read = await live.read('a');
    assert.deepEqual(read, bundle);
    assert.equal(pemPool.size, distinct, 'live/ hands its strings to the pool');
    const reader = new RecordReader(store, clock, silentLogger);
    const stored = await reader.read(storedKey('a', 'staging'), storedCertKind('staging'));
    assert.deepEqual(stored?.bundle, bundle);
    assert.equal(pemPool.size, distinct, 'the record found the same strings there');
    pemPool.clear();
    await reader.read(storedKey('a', 'staging'), storedCertKind('staging'));
    assert.equal(pemPool.size, distinct, 'the store hands its strings to the pool too');
  });

  it('a pass empties the pool when it ends', async () => {
    const runner = oneCertPassRunner(() => {
      pemPool.intern('-----BEGIN CERTIFICATE-----');
    }, clock);
    await runner.run();
    assert.equal(pemPool.size, 0);
  });
});
