// What a pass spends checking certificates (issue 15): bundleProblem
// compares the leaf with `cert` as DER text rather than parsing both, and
// a record this process wrote from a checked bundle is not checked again
// when read back (RecordReader.vouch).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { LiveDir } from '../../src/deploy/live-dir.js';
import type { CertBundle, CertSpec } from '../../src/domain/types.js';
import { FixedClock, systemClock } from '../../src/lifecycle/clock.js';
import { Reconciler } from '../../src/reconcile/reconciler.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { ok, RecordReader, type Parsed, type RecordKind } from '../../src/store/records.js';
import { createLogger } from '../../src/util/log.js';
import { bundleProblem } from '../../src/util/x509.js';

describe('bundle checks', () => {
  let a: CertBundle;
  let b: CertBundle;
  before(async () => {
    const issuer = new SelfSignedIssuer(systemClock);
    const spec = { name: 'x', domains: ['x.test'], source: 'test' };
    a = await issuer.issue(spec, 'ecdsa-p256');
    b = await issuer.issue(spec, 'ecdsa-p256');
  });

  describe('bundleProblem', () => {
    const rewrap = (pem: string) => {
      const body = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
      return `-----BEGIN CERTIFICATE-----\n${body.replace(/.{40}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;
    };
    const cases: [string, () => CertBundle, RegExp | undefined][] = [
      ['a bundle that holds together', () => a, undefined],
      ['the same leaf wrapped at other widths', () => ({ ...a, cert: rewrap(a.cert) }), undefined],
      [
        'a fullchain that starts with another leaf',
        () => ({ ...a, cert: b.cert }),
        /fullchain does not start with the leaf/,
      ],
      [
        "another certificate's key",
        () => ({ ...a, privkey: b.privkey }),
        /private key does not match/,
      ],
      ['no certificate in fullchain', () => ({ ...a, fullchain: '' }), /no certificate/],
      ['a cert that is not PEM', () => ({ ...a, cert: 'garbage' }), /does not start with the leaf/],
    ];
    for (const [what, bundle, want] of cases) {
      it(what, () => {
        const got = bundleProblem(bundle());
        if (want === undefined) assert.equal(got, undefined);
        else assert.match(got ?? '', want);
      });
    }
  });

  describe('RecordReader.vouch', () => {
    let dir: string;
    let reader: RecordReader;
    let store: FsCertStore;
    const calls = { full: 0, shape: 0 };
    const kind = (cacheable: boolean): RecordKind<string> => ({
      what: 'thing',
      fallback: 'none',
      cacheable,
      parse: (raw) => (calls.full++, ok(raw.toString())),
      parseVerified: (raw) => (calls.shape++, ok(raw.toString())),
    });
    beforeEach(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'vouch-'));
      store = new FsCertStore(dir, { lockStaleMs: 60_000, lockPollMs: 20 });
      reader = new RecordReader(store, systemClock, createLogger({ level: 'error' }));
      calls.full = calls.shape = 0;
    });
    afterEach(() => rm(dir, { recursive: true, force: true }));

    it('bytes vouched for are read back with the shape check only', async () => {
      await store.store('certs/x/a.json', 'written');
      reader.vouch('written', kind(true), 'written');
      assert.equal(await reader.read('certs/x/a.json', kind(true)), 'written');
      assert.deepEqual(calls, { full: 0, shape: 1 });
    });

    it('other bytes under the same key are checked in full', async () => {
      reader.vouch('written', kind(true), 'written');
      await store.store('certs/x/a.json', 'changed by hand');
      assert.equal(await reader.read('certs/x/a.json', kind(true)), 'changed by hand');
      assert.deepEqual(calls, { full: 1, shape: 0 });
    });

    it('a kind that is not cacheable is always checked in full', async () => {
      await store.store('certs/x/a.json', 'written');
      reader.vouch('written', kind(false), 'written');
      await reader.read('certs/x/a.json', kind(false));
      assert.deepEqual(calls, { full: 1, shape: 0 });
    });

    it('a pass that writes the placeholder and then the staging certificate checks neither record again', async () => {
      /** Counts the full checks of certificate records (not the shape-only ones). */
      class CountingReader extends RecordReader {
        full = 0;
        override parse<T>(raw: Buffer, k: RecordKind<T>): Parsed<T> {
          if (k.what !== 'certificate') return super.parse(raw, k);
          return super.parse(raw, { ...k, parse: (r: Buffer) => (this.full++, k.parse(r)) });
        }
      }
      const clock = new FixedClock(new Date());
      const counting = new CountingReader(store, clock, createLogger({ level: 'error' }));
      const spec: CertSpec = { name: 'www', domains: ['www.example.test'], source: 'test' };
      // A CA that answers at once: a second self-signed issuer, as the staging one.
      const staging = Object.assign(new SelfSignedIssuer(clock), {
        phase: 'staging' as const,
        directoryUrl: 'https://staging.test/dir',
      });
      const reconciler = new Reconciler({
        store,
        live: new LiveDir(path.join(dir, 'live-root')),
        records: counting,
        issuers: { 'self-signed': new SelfSignedIssuer(clock), staging, production: staging },
        platform: {
          name: 'static',
          holdsCertificates: false,
          discover: () => Promise.resolve({ specs: [spec], problems: [] }),
          read: () => Promise.resolve(undefined),
          push: () => Promise.resolve(),
        },
        clock,
        log: createLogger({ level: 'error' }),
        random: () => 0.5,
        settings: {
          target: 'staging',
          keyType: 'ecdsa-p256',
          directories: { staging: 'https://staging.test/dir', production: 'https://prod.test/dir' },
        },
      } as never);
      const st = await reconciler.reconcileOne(spec);
      assert.equal(st.ready, true, JSON.stringify(st));
      assert.equal(counting.full, 0);
    });
  });
});
