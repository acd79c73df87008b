import assert from 'node:assert/strict';
import type { CertMeta } from '../../src/domain/types.js';
import { decidePlatform, type PlatformFacts } from '../../src/lifecycle/platform-policy.js';
import { decide, type CertFacts } from '../../src/lifecycle/policy.js';
import {
  decisionStableUntil,
  platformStableUntil,
  steadyHolds,
  steadyKey,
  type SteadyMark,
} from '../../src/lifecycle/steady.js';
import { seededRandom } from '../../scripts/soak-plan.js';

const DAY = 86_400_000;
const NOW = new Date('2026-06-01T00:00:00Z');
const STAGING = 'https://staging.test/dir';
const PROD = 'https://prod.test/dir';

function meta(over: Partial<CertMeta> = {}): CertMeta {
  return {
    name: 'a',
    phase: 'staging',
    domains: ['a.test'],
    directoryUrl: STAGING,
    keyType: 'ecdsa-p256',
    notBefore: new Date(NOW.getTime() - 10 * DAY).toISOString(),
    notAfter: new Date(NOW.getTime() + 80 * DAY).toISOString(),
    serial: 'AA',
    chainVerified: true,
    issuedAt: NOW.toISOString(),
    ...over,
  };
}

function facts(over: Partial<CertFacts> = {}): CertFacts {
  const m = meta();
  return {
    name: 'a',
    domains: ['a.test'],
    target: 'staging',
    keyType: 'ecdsa-p256',
    directories: { staging: STAGING, production: PROD },
    stored: { staging: m },
    live: { serial: m.serial, notBefore: m.notBefore, notAfter: m.notAfter, phase: 'staging' },
    ...over,
  };
}

describe('steady: until when a decision made on unchanged facts stays the same', () => {
  const cases: { name: string; facts: CertFacts; until: number }[] = [
    {
      name: 'a 90-day staging certificate holds until its renewal time (a third left)',
      facts: facts(),
      until: NOW.getTime() + 50 * DAY,
    },
    {
      name: 'an ARI time drawn for this serial holds until that time',
      facts: facts({ ari: { staging: { serial: 'AA', renewAt: new Date(NOW.getTime() + DAY) } } }),
      until: NOW.getTime() + DAY,
    },
    {
      name: 'an ARI time for another serial does not count',
      facts: facts({ ari: { staging: { serial: 'BB', renewAt: new Date(NOW.getTime() + DAY) } } }),
      until: NOW.getTime() + 50 * DAY,
    },
    {
      name: 'a production certificate expiring before the staging renewal time bounds it',
      facts: facts({
        stored: {
          staging: meta(),
          production: meta({
            phase: 'production',
            directoryUrl: PROD,
            serial: 'CC',
            notBefore: new Date(NOW.getTime() - 100 * DAY).toISOString(),
            notAfter: new Date(NOW.getTime() + 2 * DAY).toISOString(),
          }),
        },
      }),
      until: NOW.getTime() + 2 * DAY,
    },
    {
      name: 'an instant already passed does not bound it (renewal time passed: the expiry does)',
      facts: facts({
        stored: {
          staging: meta({
            notBefore: new Date(NOW.getTime() - 70 * DAY).toISOString(),
            notAfter: new Date(NOW.getTime() + 20 * DAY).toISOString(),
          }),
        },
        live: undefined,
      }),
      until: NOW.getTime() + 20 * DAY,
    },
    {
      name: 'nothing stored and nothing served: no instant, it holds for ever',
      facts: facts({ stored: {}, live: undefined }),
      until: Infinity,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(decisionStableUntil(c.facts, NOW), c.until);
    });
  }

  it('the platform copy bounds its decision seven days before its expiry, then at it', () => {
    const copy = {
      serial: 'AB',
      notAfter: new Date(NOW.getTime() + 30 * DAY).toISOString(),
      ours: true,
    };
    assert.equal(platformStableUntil({ copy, serials: {} }, NOW), NOW.getTime() + 23 * DAY);
    const near = { ...copy, notAfter: new Date(NOW.getTime() + 3 * DAY).toISOString() };
    assert.equal(platformStableUntil({ copy: near, serials: {} }, NOW), NOW.getTime() + 3 * DAY);
    assert.equal(platformStableUntil({ serials: {} }, NOW), Infinity);
  });
});

describe('steady: steadyHolds', () => {
  const x = {};
  const y = {};
  const mark: SteadyMark = {
    key: steadyKey(['a.test'], undefined),
    inputs: [x, y, null],
    until: NOW.getTime() + DAY,
  };
  const cur = { key: mark.key, inputs: [x, y, null] };
  it('holds with the same key, the same inputs and no deadline come', () => {
    assert.equal(steadyHolds(mark, NOW, cur), true);
  });
  it('does not hold without a mark', () => assert.equal(steadyHolds(undefined, NOW, cur), false));
  it('does not hold when forced', () =>
    assert.equal(steadyHolds(mark, NOW, { ...cur, force: true }), false));
  it('does not hold once the deadline has come', () => {
    assert.equal(steadyHolds(mark, new Date(mark.until), cur), false);
  });
  it('does not hold for other names or another profile', () => {
    assert.equal(
      steadyHolds(mark, NOW, { ...cur, key: steadyKey(['a.test', 'b.test'], undefined) }),
      false,
    );
    assert.equal(
      steadyHolds(mark, NOW, { ...cur, key: steadyKey(['a.test'], 'shortlived') }),
      false,
    );
  });
  it('does not hold when an input is another object, or unvouched (undefined)', () => {
    assert.equal(steadyHolds(mark, NOW, { ...cur, inputs: [x, {}, null] }), false);
    assert.equal(steadyHolds(mark, NOW, { ...cur, inputs: [x, undefined, null] }), false);
    assert.equal(
      steadyHolds({ ...mark, inputs: [x, undefined, null] }, NOW, {
        ...cur,
        inputs: [x, undefined, null],
      }),
      false,
    );
  });
});

describe('steady: property: the shortcut never skips a pass whose full decision would differ', () => {
  const RUNS = 3000;

  function randomFacts(r: () => number): CertFacts {
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
    const t = (spanDays: number) => NOW.getTime() + (r() * 2 - 1) * spanDays * DAY;
    const randomMeta = (phase: 'staging' | 'production'): CertMeta => {
      const notBefore = t(100);
      const lifetime = pick([6 * DAY, 90 * DAY, 2 * 60_000, r() * 100 * DAY]);
      return meta({
        phase,
        directoryUrl: r() < 0.9 ? (phase === 'staging' ? STAGING : PROD) : 'https://other.test/dir',
        domains: r() < 0.9 ? ['a.test'] : ['a.test', 'b.test'],
        keyType: r() < 0.95 ? 'ecdsa-p256' : 'rsa-2048',
        chainVerified: r() < 0.95,
        notBefore: new Date(notBefore).toISOString(),
        notAfter: new Date(notBefore + lifetime).toISOString(),
        serial: pick(['AA', 'BB', 'CC']),
        ...(r() < 0.1 && { profile: 'shortlived' }),
      });
    };
    const stored: CertFacts['stored'] = {
      ...(r() < 0.7 && { staging: randomMeta('staging') }),
      ...(r() < 0.5 && { production: randomMeta('production') }),
    };
    const liveFrom = pick([stored.staging, stored.production, undefined, undefined]);
    const live: CertFacts['live'] =
      r() < 0.15
        ? undefined
        : liveFrom
          ? {
              serial: liveFrom.serial,
              notBefore: liveFrom.notBefore,
              notAfter: liveFrom.notAfter,
              phase: liveFrom.phase,
            }
          : {
              serial: pick(['AA', 'DD']),
              notAfter: new Date(t(30)).toISOString(),
              phase: pick(['self-signed', 'foreign'] as const),
              ...(r() < 0.3 && {
                adoptable: {
                  from: pick(['staging', 'production'] as const),
                  domains: ['a.test'],
                  keyType: 'ecdsa-p256' as const,
                },
              }),
            };
    const ari: NonNullable<CertFacts['ari']> = {
      ...(r() < 0.4 && { staging: { serial: pick(['AA', 'BB']), renewAt: new Date(t(60)) } }),
      ...(r() < 0.4 && { production: { serial: pick(['AA', 'CC']), renewAt: new Date(t(60)) } }),
    };
    return facts({
      target: pick(['staging', 'production'] as const),
      stored,
      ...(live ? { live } : { live: undefined }),
      ...(Object.keys(ari).length > 0 && { ari }),
      ...(r() < 0.3 && { renewBeforeDays: pick([1, 5.9, 30, 200]) }),
      ...(r() < 0.1 && { profile: 'shortlived' }),
    });
  }

  it(`${RUNS} random certificates: decide() at any instant before decisionStableUntil equals decide() now`, () => {
    const r = seededRandom(15);
    let bounded = 0;
    for (let run = 0; run < RUNS; run++) {
      const f = randomFacts(r);
      if (f.live === undefined) delete (f as { live?: unknown }).live;
      const until = decisionStableUntil(f, NOW);
      const before = decide(f, NOW);
      const span = Number.isFinite(until) ? until - NOW.getTime() : 400 * DAY;
      if (Number.isFinite(until)) bounded++;
      for (const frac of [0, r(), r(), 0.999999]) {
        const at = new Date(NOW.getTime() + Math.floor(span * frac));
        if (at.getTime() >= until) continue;
        assert.deepEqual(
          decide(f, at),
          before,
          `run ${run} at ${at.toISOString()}: ${JSON.stringify(f)}`,
        );
      }
      // And at the deadline itself something may change (not asserted: only that it is an instant of the facts).
    }
    assert.ok(bounded > RUNS / 2, 'most runs have a deadline');
  });

  it(`${RUNS} random platform copies: decidePlatform() before platformStableUntil equals it now`, () => {
    const r = seededRandom(4);
    for (let run = 0; run < RUNS; run++) {
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
      const f: PlatformFacts = {
        ...(r() < 0.9 && {
          live: {
            serial: pick(['AA', 'BB']),
            notAfter: NOW.toISOString(),
            phase: pick(['self-signed', 'staging', 'production', 'foreign'] as const),
          },
        }),
        ...(r() < 0.9 && {
          copy: {
            serial: pick(['AA', 'BB', 'CC']),
            ours: r() < 0.9,
            ...(r() < 0.9 && {
              notAfter: new Date(NOW.getTime() + (r() * 2 - 1) * 30 * DAY).toISOString(),
            }),
          },
        }),
        serials: { 'self-signed': pick(['BB', 'CC']), staging: pick(['AA', 'CC']) },
      };
      const until = platformStableUntil(f, NOW);
      const before = decidePlatform(f, NOW);
      const span = Number.isFinite(until) ? until - NOW.getTime() : 400 * DAY;
      for (const frac of [0, r(), 0.999999]) {
        const at = new Date(NOW.getTime() + Math.floor(span * frac));
        if (at.getTime() >= until) continue;
        assert.deepEqual(decidePlatform(f, at), before, `run ${run}: ${JSON.stringify(f)}`);
      }
    }
  });
});
