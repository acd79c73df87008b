// Who may ask for which certificate (src/lifecycle/ownership.ts):
// ALLOWED_DOMAINS, and "the first holder keeps it", on a fixed clock.
import assert from 'node:assert/strict';
import { FixedClock } from '../../src/lifecycle/clock.js';
import type { CertSpec } from '../../src/domain/types.js';
import {
  CLAIM_RELEASE_MS,
  decideOwnership,
  EMPTY_CLAIMS,
  parseClaims,
  type ClaimsRecord,
} from '../../src/lifecycle/ownership.js';

const T0 = '2026-12-02T10:00:00.000Z';
const spec = (source: string, name: string, ...domains: string[]): CertSpec => ({
  name,
  domains: domains.length ? domains : [name],
  source,
});
const SHOP = spec('svc/shop', 'shop', 'shop.example.com');
const claimsOf = (...specs: CertSpec[]): ClaimsRecord =>
  decideOwnership({ requests: specs, claims: EMPTY_CLAIMS, allowed: [], now: new Date(T0) }).claims;

interface Case {
  name: string;
  requests: CertSpec[];
  claims?: ClaimsRecord;
  allowed?: string[];
  /** ms after T0. */
  after?: number;
  kept: [name: string, source: string][];
  refused: [source: string, code: string][];
  /** A word each refusal's message must contain, in order. */
  says?: string[];
}

const cases: Case[] = [
  {
    name: 'issues every request when nothing conflicts and the list is empty',
    requests: [spec('env:DOMAINS', 'a.example.com'), spec('svc/b', 'b.example.org')],
    kept: [
      ['a.example.com', 'env:DOMAINS'],
      ['b.example.org', 'svc/b'],
    ],
    refused: [],
  },
  {
    name: 'refuses a label for a domain outside ALLOWED_DOMAINS and issues an allowed one',
    requests: [spec('svc/evil', 'evil.example.org'), spec('svc/ok', 'ok.example.com')],
    allowed: ['example.com'],
    kept: [['ok.example.com', 'svc/ok']],
    refused: [['svc/evil', 'not-allowed']],
    says: ['evil.example.org is outside ALLOWED_DOMAINS (example.com)'],
  },
  {
    name: 'refuses a whole certificate when one of its hostnames is outside the list',
    requests: [spec('svc/m', 'm', 'a.example.com', 'a.badexample.com')],
    allowed: ['example.com'],
    kept: [],
    refused: [['svc/m', 'not-allowed']],
    says: ['a.badexample.com'],
  },
  {
    name: "refuses a second service asking for shop's hostname under another name, naming both",
    requests: [spec('svc/evil', 'evil', 'shop.example.com'), SHOP],
    claims: claimsOf(SHOP),
    kept: [['shop', 'svc/shop']],
    refused: [['svc/evil', 'claimed']],
    says: ['hostname shop.example.com belongs to certificate shop (held by svc/shop)'],
  },
  {
    name: 'keeps shop for its holder when a newcomer asks for the name with other hostnames, whatever the order',
    requests: [spec('svc/evil', 'shop', 'evil.example.com'), SHOP],
    claims: claimsOf(SHOP),
    kept: [['shop', 'svc/shop']],
    refused: [['svc/evil', 'claimed']],
    says: ['certificate shop is held by svc/shop'],
  },
  {
    name: 'keeps the hostname of a holder that is briefly gone, refusing the newcomer',
    requests: [spec('svc/evil', 'evil', 'shop.example.com')],
    claims: claimsOf(SHOP),
    after: CLAIM_RELEASE_MS - 1,
    kept: [],
    refused: [['svc/evil', 'claimed']],
  },
  {
    name: 'gives the hostname to the newcomer once the holder has not asked for the release period',
    requests: [spec('svc/new', 'new', 'shop.example.com')],
    claims: claimsOf(SHOP),
    after: CLAIM_RELEASE_MS,
    kept: [['new', 'svc/new']],
    refused: [],
  },
  {
    name: 'lets another source take over exactly the same request at once (a recreated container)',
    requests: [spec('svc/shop-2', 'shop', 'shop.example.com')],
    claims: claimsOf(SHOP),
    after: 1000,
    kept: [['shop', 'svc/shop-2']],
    refused: [],
  },
  {
    name: 'merges the same certificate asked for by two services, without a problem',
    requests: [SHOP, spec('svc/shop-canary', 'shop', 'shop.example.com')],
    claims: claimsOf(SHOP),
    kept: [['shop', 'svc/shop']],
    refused: [],
  },
  {
    name: 'lets the holder change its own hostnames',
    requests: [spec('svc/shop', 'shop', 'shop.example.com', 'cdn.example.com')],
    claims: claimsOf(SHOP),
    kept: [['shop', 'svc/shop']],
    refused: [],
  },
  {
    name: 'without claims, keeps the first of two sources asking for one name (DOMAINS comes first)',
    requests: [
      spec('env:DOMAINS', 'shop', 'shop.example.com'),
      spec('svc/x', 'shop', 'x.example.com'),
    ],
    kept: [['shop', 'env:DOMAINS']],
    refused: [['svc/x', 'duplicate-name']],
  },
  {
    name: 'without claims, refuses a later name asking for a hostname an earlier one has',
    requests: [
      spec('env:DOMAINS', 'shop', 'shop.example.com'),
      spec('svc/x', 'x', 'shop.example.com'),
    ],
    kept: [['shop', 'env:DOMAINS']],
    refused: [['svc/x', 'claimed']],
  },
];

describe('ownership: allowed domains and first-holder claims', () => {
  for (const c of cases) {
    it(c.name, () => {
      const clock = new FixedClock(T0);
      clock.advance(c.after ?? 0);
      const d = decideOwnership({
        requests: c.requests,
        claims: c.claims ?? EMPTY_CLAIMS,
        allowed: c.allowed ?? [],
        now: clock.now(),
      });
      assert.deepEqual(
        d.specs.map((s) => [s.name, s.source]),
        c.kept,
      );
      assert.deepEqual(
        d.problems.map((p) => [p.source, p.code]),
        c.refused,
      );
      (c.says ?? []).forEach((word, i) =>
        assert.ok(
          d.problems[i]?.message.includes(word),
          `problem ${i} says ${word}: ${d.problems[i]?.message}`,
        ),
      );
    });
  }

  it('remembers who held a name across passes, and only rewrites the record when it changed', () => {
    const clock = new FixedClock(T0);
    const first = decideOwnership({
      requests: [SHOP],
      claims: EMPTY_CLAIMS,
      allowed: [],
      now: clock.now(),
    });
    assert.equal(first.changed, true);
    assert.deepEqual(first.claims.names.shop, {
      domains: ['shop.example.com'],
      source: 'svc/shop',
      since: T0,
      seenAt: T0,
    });
    clock.advance(60_000);
    const again = decideOwnership({
      requests: [SHOP],
      claims: first.claims,
      allowed: [],
      now: clock.now(),
    });
    assert.equal(again.changed, false, 'a minute later: nothing to write');
    clock.advance(CLAIM_RELEASE_MS / 2);
    const later = decideOwnership({
      requests: [SHOP],
      claims: again.claims,
      allowed: [],
      now: clock.now(),
    });
    assert.equal(later.changed, true, 'seenAt is refreshed before the claim could lapse');
    assert.equal(later.claims.names.shop?.since, T0, 'the holder keeps its age');
    assert.equal(later.claims.names.shop?.seenAt, clock.now().toISOString());
  });

  it('keeps the claim of a holder that stopped asking until it lapses, then forgets it', () => {
    const claims = claimsOf(SHOP);
    const soon = decideOwnership({
      requests: [],
      claims,
      allowed: [],
      now: new Date(Date.parse(T0) + 1000),
    });
    assert.ok(soon.claims.names.shop);
    const lapsed = decideOwnership({
      requests: [],
      claims,
      allowed: [],
      now: new Date(Date.parse(T0) + CLAIM_RELEASE_MS),
    });
    assert.deepEqual(lapsed.claims.names, {});
    assert.equal(lapsed.changed, true);
  });

  describe('the stored record', () => {
    it('reads back what it wrote', () => {
      const c = claimsOf(SHOP, { ...spec('svc/p', 'p.example.com'), profile: 'shortlived' });
      assert.deepEqual(parseClaims(JSON.stringify(c)), c);
    });
    for (const [what, text] of [
      ['not JSON', '{"version":1,'],
      ['another version', '{"version":2,"names":{}}'],
      [
        'a claim without a source',
        '{"version":1,"names":{"a":{"domains":[],"since":"x","seenAt":"x"}}}',
      ],
      [
        'hostnames that are not strings',
        '{"version":1,"names":{"a":{"domains":[1],"source":"s","since":"x","seenAt":"x"}}}',
      ],
      ['null', 'null'],
    ] as const) {
      it(`treats ${what} as corrupt`, () => assert.equal(parseClaims(text), undefined));
    }
  });
});
