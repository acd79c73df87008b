// The Discoverer's shortcut (src/reconcile/discoverer.ts): the same
// requests and claims give the same ownership decision until
// ownershipStableUntil (src/lifecycle/ownership.ts).
import assert from 'node:assert/strict';
import type { CertSpec } from '../../src/domain/types.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import {
  CLAIM_RELEASE_MS,
  decideOwnership,
  EMPTY_CLAIMS,
  ownershipStableUntil,
  type ClaimsRecord,
} from '../../src/lifecycle/ownership.js';
import type { Platform } from '../../src/platform/platform.js';
import { Discoverer } from '../../src/reconcile/discoverer.js';
import type { RecordSlot } from '../../src/lifecycle/platform-memory.js';
import { silentLogger } from '../../src/util/log.js';

const T0 = new Date('2026-12-02T10:00:00.000Z');
const MIN = 60_000;
const spec = (source: string, name: string, ...domains: string[]): CertSpec => ({
  name,
  domains: domains.length ? domains : [name],
  source,
});

describe('ownership: until when the same requests and claims decide the same', () => {
  it('the first claim refresh (a quarter of the release period after seenAt) bounds it, then the release', () => {
    const claims = decideOwnership({
      requests: [spec('svc/a', 'a.test')],
      claims: EMPTY_CLAIMS,
      allowed: [],
      now: T0,
    }).claims;
    assert.equal(ownershipStableUntil(claims, T0), T0.getTime() + CLAIM_RELEASE_MS / 4);
    const later = new Date(T0.getTime() + CLAIM_RELEASE_MS / 2);
    assert.equal(ownershipStableUntil(claims, later), T0.getTime() + CLAIM_RELEASE_MS);
    assert.equal(ownershipStableUntil(EMPTY_CLAIMS, T0), Infinity);
  });

  it('property: 2000 random requests and claims decide the same at any instant before it (when nothing changed)', () => {
    let seed = 7;
    const r = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
    let checked = 0;
    for (let run = 0; run < 2000; run++) {
      const pool = [
        spec('svc/a', 'a', 'a.test'),
        spec('svc/b', 'b', 'b.test'),
        spec('svc/c', 'a', 'a.test'),
        spec('svc/d', 'd', 'a.test', 'd.test'),
        spec('env:DOMAINS', 'e', 'e.test'),
      ];
      const claimed = pool.filter(() => r() < 0.5);
      // Half the time the holders ask again, as in an idle daemon.
      const requests = r() < 0.5 ? claimed : pool.filter(() => r() < 0.6);
      const claimedAt = new Date(T0.getTime() - r() * 2 * CLAIM_RELEASE_MS);
      const claims: ClaimsRecord = decideOwnership({
        requests: claimed,
        claims: EMPTY_CLAIMS,
        allowed: [],
        now: claimedAt,
      }).claims;
      const now = new Date(claimedAt.getTime() + pick([0, r() * CLAIM_RELEASE_MS, r() * MIN]));
      const at = (t: Date) => decideOwnership({ requests, claims, allowed: [], now: t });
      const before = at(now);
      if (before.changed) continue;
      checked++;
      const until = ownershipStableUntil(claims, now);
      const span = Number.isFinite(until) ? until - now.getTime() : 3 * CLAIM_RELEASE_MS;
      for (const f of [r(), 0.9999]) {
        const t = new Date(now.getTime() + Math.floor(span * f));
        if (t.getTime() >= until) continue;
        assert.deepEqual(at(t), before, `run ${run}`);
      }
    }
    assert.ok(checked > 100, `${checked} unchanged decisions checked`);
  });
});

describe('Discoverer: an unchanged discovery is not decided again', () => {
  /** A platform that hands out the same spec objects while `specs` is the same array. */
  let specs: CertSpec[];
  const platform: Platform = {
    name: 'test',
    holdsCertificates: false,
    discover: () => Promise.resolve({ specs: [...specs], problems: [] }),
    read: () => Promise.resolve(undefined),
    push: () => Promise.resolve(),
  };
  /** A claims slot whose record is one object until saved (as the reader's shared kind gives it). */
  let record: ClaimsRecord;
  let saves: number;
  const slot: RecordSlot<ClaimsRecord> = {
    load: () => Promise.resolve({ state: 'ok', value: record }),
    save: (v) => {
      saves++;
      record = JSON.parse(JSON.stringify(v)) as ClaimsRecord;
      return Promise.resolve();
    },
  };
  let clock: FixedClock;
  let discoverer: Discoverer;
  let decided: number;

  beforeEach(async () => {
    specs = [spec('svc/a', 'a.test'), spec('svc/b', 'b.test')];
    record = EMPTY_CLAIMS;
    saves = 0;
    clock = new FixedClock(T0);
    discoverer = new Discoverer(platform, silentLogger, { claims: slot, clock });
    // Count the decisions: the result's specs array is the decision's own.
    decided = 0;
    let last: unknown;
    const discover = discoverer.discover.bind(discoverer);
    discoverer.discover = async (o) => {
      const got = await discover(o);
      if (got.specs !== last) decided++;
      last = got.specs;
      return got;
    };
    await discoverer.discover(); // claims made and saved
    await discoverer.discover(); // decided on the saved record: unchanged
    assert.equal(saves, 1);
    decided = 0;
  });

  it('the same requests, the same claims record, before its deadline: the same decision', async () => {
    const a = await discoverer.discover();
    const b = await discoverer.discover();
    assert.equal(decided, 0);
    assert.deepEqual(
      b.specs.map((s) => s.name),
      ['a.test', 'b.test'],
    );
    assert.equal(a.specs, b.specs);
  });

  it('another request: decided again', async () => {
    specs = [...specs, spec('svc/c', 'c.test')];
    const got = await discoverer.discover();
    assert.equal(decided, 1);
    assert.deepEqual(
      got.specs.map((s) => s.name),
      ['a.test', 'b.test', 'c.test'],
    );
  });

  it('a request changed in place of another (same names, other source): decided again', async () => {
    specs = [spec('svc/a', 'a.test'), spec('svc/x', 'b.test')];
    await discoverer.discover();
    assert.equal(decided, 1);
  });

  it('the claims record changed (another replica wrote it): decided again', async () => {
    record = { ...record };
    await discoverer.discover();
    assert.equal(decided, 1);
  });

  it('the claim refresh time comes: decided again (and the refreshed claims saved)', async () => {
    clock.advance(CLAIM_RELEASE_MS / 4 + MIN);
    await discoverer.discover();
    assert.equal(decided, 1);
    assert.equal(saves, 2);
  });
});
