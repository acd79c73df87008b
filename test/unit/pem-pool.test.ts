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
import { StringPool, pemPool, pooledBundle } from '../../src/util/pem-pool.js';
import { describeBundle } from '../../src/util/x509.js';
import { oneCertPassRunner } from '../support/pass-runner.js';
import { retainedBy } from '../support/retained.js';
import { rootAndLeaf } from '../support/test-chain.js';
import { storeStagingCert } from '../support/reconcile.js';
import type { CertBundle } from '../../src/domain/types.js';

// Which copy a string is cannot be seen from JavaScript (=== compares
// contents): these tests check that both readers go through the pool and
// that a pass empties it; the bytes saved are in docs/performance.md. The
// fullchain tests weigh what the values hold on V8's heap instead.

const emptyPool = () => pemPool.clear();

/** A leaf its root issued, as a bundle (fullchain: leaf then root), and its meta. */
async function chainedBundle(): Promise<Buffer> {
  const { rootPem, leafPem, leafKeyPem } = await rootAndLeaf({
    rootName: 'CN=pem-pool test root',
    subject: 'CN=a.test',
    san: { type: 'dns', value: 'a.test' },
  });
  const cert = `${leafPem}\n`;
  const chain = `${rootPem}\n`;
  const bundle = {
    cert,
    chain,
    fullchain: cert + chain,
    privkey: leafKeyPem,
  };
  const meta = describeBundle(bundle, {
    name: 'a',
    phase: 'staging',
    directoryUrl: 'https://ca.test/dir',
    keyType: 'ecdsa-p256',
    issuedAt: new Date(),
  });
  return Buffer.from(JSON.stringify({ meta, bundle }));
}

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

  it('a fullchain that is its certificate followed by its chain holds no copy of them', () => {
    const pem = (tag: string) =>
      `-----BEGIN CERTIFICATE-----\n${tag.repeat(5000)}\n-----END CERTIFICATE-----\n`;
    let parts = 0;
    const bytes = retainedBy(() => {
      parts = 0;
      return Array.from({ length: 40 }, (_, i) => {
        const cert = pem(`c${i}`);
        const chain = pem(`i${i}`);
        parts += cert.length + chain.length;
        // Flat strings, as JSON.parse and a file read give them.
        const read = JSON.parse(
          JSON.stringify({ cert, chain, fullchain: cert + chain, privkey: 'k' }),
        ) as CertBundle;
        // Not compared here: comparing a rope makes it flat.
        return pooledBundle(read);
      });
    }, emptyPool);
    // A flat fullchain would hold as much again as its two parts.
    assert.ok(bytes < parts * 1.25, `${bytes} bytes held for ${parts} bytes of PEM`);
  });

  it('a fullchain that is not its certificate and chain joined is pooled as it is; a lone certificate is its own fullchain', () => {
    const pool = new StringPool();
    const cert = ['-----BEGIN', 'CERTIFICATE-----'].join(' ');
    const chain = ['-----BEGIN', 'CHAIN-----'].join(' ');
    assert.equal(pool.joined(`${chain}${cert}`, cert, chain), `${chain}${cert}`);
    assert.equal(pool.joined(`${cert}\n${chain}`, cert, chain), `${cert}\n${chain}`);
    assert.equal(pool.joined(cert, cert, ''), cert);
    assert.equal(pool.joined(`${cert}x`, cert, ''), `${cert}x`);
    assert.equal(pool.joined(`${cert}${chain}`, cert, chain), `${cert}${chain}`);
    assert.equal(pool.size, 3, 'the three not joined are pooled');
  });

  it('a stored certificate checked in full keeps its fullchain joined: the check reads the copy not pooled', async () => {
    const raw = await chainedBundle();
    const kind = storedCertKind('staging');
    const parse = () => {
      const got = kind.parse(raw);
      assert.ok(got.ok, got.ok ? '' : got.problem);
      // Each value its own strings, as if each were another certificate's.
      pemPool.clear();
      return got.value;
    };
    const n = 200;
    const checked = retainedBy(() => Array.from({ length: n }, parse), emptyPool);
    const asRead = retainedBy(() =>
      Array.from({ length: n }, () => JSON.parse(raw.toString('utf8')) as unknown),
    );
    const { bundle } = JSON.parse(raw.toString('utf8')) as { bundle: CertBundle };
    // As read, each value holds a flat fullchain; checked and pooled, a rope.
    assert.ok(
      checked < asRead - 0.6 * n * bundle.fullchain.length,
      `${checked} bytes held checked, ${asRead} as read, fullchain ${bundle.fullchain.length}`,
    );
  });

  it('a pass empties the pool when it ends', async () => {
    const runner = oneCertPassRunner(() => {
      pemPool.intern('-----BEGIN CERTIFICATE-----');
    }, clock);
    await runner.run();
    assert.equal(pemPool.size, 0);
  });
});
