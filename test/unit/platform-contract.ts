// The Platform contract: the same behaviours asserted for every
// implementation (static, Rancher, Docker), each through its own way of
// declaring hostnames. Run by a per-platform test file:
//
//   platformContract('static', async () => harness);
//
// A harness declares hostnames the way a user of that platform would (a
// DOMAINS entry, a service label, a container label) in the DOMAINS syntax.
import assert from 'node:assert/strict';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { errorCode } from '../../src/domain/errors.js';
import type { StoredCert } from '../../src/domain/types.js';
import { systemClock } from '../../src/lifecycle/clock.js';
import type { Discovery, Platform } from '../../src/platform/platform.js';
import { describeBundle } from '../../src/util/x509.js';
import { decideOwnership, EMPTY_CLAIMS } from '../../src/lifecycle/ownership.js';

export interface ContractHarness {
  readonly platform: Platform;
  /** Sets DOMAINS (and DOMAINS_FILE) as the platform reads it. */
  setDomains(value: string): void;
  /** Declares one certificate (a DOMAINS-syntax entry) the platform's own way. */
  declare(entry: string): Promise<void>;
  /** Removes every declaration and resets DOMAINS, between tests. */
  reset(): Promise<void>;
  /** The same kind of platform, pointed at a platform that does not answer. */
  unreachable(): Platform;
  /** The error code `unreachable().discover()` must carry; undefined: any error. */
  readonly unreachableCode?: string;
}

async function storedCert(name: string, domains: string[]): Promise<StoredCert> {
  const bundle = await new SelfSignedIssuer(systemClock).issue(
    { name, domains, source: 'contract' },
    'ecdsa-p256',
  );
  return {
    bundle,
    meta: describeBundle(bundle, {
      name,
      phase: 'self-signed',
      directoryUrl: '',
      keyType: 'ecdsa-p256',
      issuedAt: new Date(),
    }),
  };
}

function byName(d: Discovery): Map<string, readonly string[]> {
  return new Map(d.specs.map((s) => [s.name, [...s.domains].sort()]));
}

export function platformContract(label: string, setup: () => Promise<ContractHarness>): void {
  describe(`Platform contract: ${label}`, function () {
    this.timeout(60_000);
    let h: ContractHarness;

    before(async () => {
      h = await setup();
    });
    afterEach(async () => {
      await h.reset();
    });

    it('discovers a declared hostname as one certificate named after it', async () => {
      await h.declare('one.contract.test');
      const d = await h.platform.discover();
      assert.deepEqual(byName(d).get('one.contract.test'), ['one.contract.test']);
      assert.deepEqual(d.problems, []);
    });

    it('discovers a named certificate with several hostnames', async () => {
      await h.declare('multi=a.contract.test+b.contract.test');
      const d = await h.platform.discover();
      assert.deepEqual(byName(d).get('multi'), ['a.contract.test', 'b.contract.test']);
      const spec = d.specs.find((s) => s.name === 'multi');
      assert.equal(spec?.domains[0], 'a.contract.test', 'the first hostname stays first (CN)');
      assert.ok(spec?.source, 'says where the request came from');
    });

    it('reports a bad item as a problem, without throwing, and keeps the good ones', async () => {
      await h.declare('good.contract.test');
      await h.declare('*.*.contract.test');
      await h.declare('bad_host!.contract.test');
      const d = await h.platform.discover();
      assert.deepEqual(byName(d).get('good.contract.test'), ['good.contract.test']);
      assert.deepEqual(
        d.problems.map((p) => p.code).sort(),
        ['bad-character', 'wildcard'],
        JSON.stringify(d.problems),
      );
      for (const p of d.problems) {
        assert.ok(p.source && p.message && p.value, `a problem names source, value and why`);
      }
      assert.equal(d.specs.length, 1, 'bad items make no certificate');
    });

    it('discovers DOMAINS alongside what the platform declares', async () => {
      h.setDomains('env.contract.test');
      await h.declare('declared.contract.test');
      const names = [...byName(await h.platform.discover()).keys()].sort();
      assert.deepEqual(names, ['declared.contract.test', 'env.contract.test']);
    });

    it('reports every request for a name; the Discoverer keeps one and names the other', async () => {
      await h.declare('dup=first.contract.test');
      await h.declare('dup=second.contract.test');
      const d = await h.platform.discover();
      const kept = decideOwnership({
        requests: d.specs,
        claims: EMPTY_CLAIMS,
        allowed: [],
        now: new Date(0),
      });
      assert.equal(kept.specs.filter((s) => s.name === 'dup').length, 1);
      assert.deepEqual(
        [...d.problems, ...kept.problems].map((p) => p.code),
        ['duplicate-name'],
      );
    });

    it('gives the same answer twice in a row', async () => {
      await h.declare('stable.contract.test');
      await h.declare('s2=x.contract.test+y.contract.test');
      const a = await h.platform.discover();
      const b = await h.platform.discover();
      assert.deepEqual(byName(b), byName(a));
    });

    it('throws when the platform cannot be read: never "no hostnames"', async () => {
      const p = h.unreachable();
      await assert.rejects(p.discover(), (err: unknown) => {
        if (h.unreachableCode !== undefined) assert.equal(errorCode(err), h.unreachableCode);
        return true;
      });
    });

    it('round-trips a certificate through push and read if it holds certificates, and ignores both if not', async () => {
      const p = h.platform;
      const first = await storedCert('push.contract.test', ['push.contract.test']);
      if (!p.holdsCertificates) {
        assert.equal(await p.read('push.contract.test'), undefined);
        await p.push(first);
        assert.equal(await p.read('push.contract.test'), undefined);
        return;
      }
      assert.equal(await p.read('push.contract.test'), undefined, 'nothing before the push');
      await p.push(first);
      const copy = await p.read('push.contract.test');
      assert.ok(copy, 'readable after the push');
      assert.equal(copy.serial, first.meta.serial.replace(/^0+/, ''));
      assert.equal(copy.ours, true, 'marked as ours');
      const second = await storedCert('push.contract.test', ['push.contract.test']);
      await p.push(second, copy);
      const again = await p.read('push.contract.test');
      assert.equal(again?.serial, second.meta.serial.replace(/^0+/, ''));
      assert.equal(again?.id, copy.id, 'updated in place');
    });
  });
}
