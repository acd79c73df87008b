// What a pass spends checking certificates (issue 15): bundleProblem
// compares the leaf with `cert` as DER text rather than parsing both, and
// a record this process wrote from a checked bundle is not checked again
// when read back (RecordReader.vouch).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import type { CertBundle } from '../../src/domain/types.js';
import { systemClock } from '../../src/lifecycle/clock.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { ok, RecordReader, type RecordKind } from '../../src/store/records.js';
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
  });
});
