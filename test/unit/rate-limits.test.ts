import assert from 'node:assert/strict';
import {
  LETSENCRYPT_PRODUCTION_LIMITS as PROD,
  LETSENCRYPT_STAGING_LIMITS as STAGING,
  checkBudget,
  emptyLedger,
  parseLedger,
  prune,
  record,
  recordRateLimited,
  type Ledger,
  type LedgerEvent,
  type RateLimits,
} from '../../src/lifecycle/rate-limits.js';

const MIN = 60 * 1000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const NOW = new Date('2026-06-01T00:00:00.000Z');
const ACCT = 'https://acme.test/acct/1';
const OTHER = 'https://acme.test/acct/2';

const ago = (ms: number) => new Date(NOW.getTime() - ms).toISOString();
const later = (ms: number) => new Date(NOW.getTime() + ms);

function ev(
  kind: LedgerEvent['kind'],
  msAgo: number,
  domains: string[],
  account = ACCT,
): LedgerEvent {
  return { at: ago(msAgo), kind, account, domains };
}

/** `n` events, the oldest `oldestAgo` ago, one every `step` after it. */
function many(
  n: number,
  kind: LedgerEvent['kind'],
  oldestAgo: number,
  step: number,
  domains: (i: number) => string[],
  account = ACCT,
): LedgerEvent[] {
  return Array.from({ length: n }, (_, i) => ev(kind, oldestAgo - i * step, domains(i), account));
}

function ledger(events: LedgerEvent[], blocks: Ledger['blocks'] = []): Ledger {
  return events.reduce<Ledger>((l, e) => record(l, e), { events: [], blocks });
}

const SET = ['www.example.com', 'example.com'];

describe('rate limits: checkBudget', () => {
  type Want =
    | { ok: true }
    | {
        ok: false;
        limit: string;
        scope: string;
        retryAt: Date;
        says?: string[];
      };
  const cases: {
    name: string;
    ledger: Ledger;
    request?: { account?: string; domains: string[] };
    limits?: RateLimits;
    want: Want;
  }[] = [
    {
      name: 'allows the first order on an empty ledger',
      ledger: emptyLedger(),
      want: { ok: true },
    },
    {
      name: 'allows a fifth certificate for the same hostname set within 7 days',
      ledger: ledger(many(4, 'issued', 6 * DAY, DAY, () => SET)),
      want: { ok: true },
    },
    {
      name: 'refuses a sixth certificate for the same hostname set within 7 days and says when the oldest one ages out',
      ledger: ledger(many(5, 'issued', 6 * DAY, DAY, () => SET)),
      want: {
        ok: false,
        limit: 'duplicateCertificates',
        scope: 'set:example.com,www.example.com',
        retryAt: later(DAY),
        says: [
          '5 certificates for exactly these hostnames (example.com, www.example.com) were issued in the last 7 days (the limit is 5)',
          'next possible at 2026-06-02T00:00:00.000Z',
        ],
      },
    },
    {
      name: 'allows the sixth certificate exactly when the oldest duplicate is 7 days old',
      ledger: ledger(many(5, 'issued', 7 * DAY, DAY, () => SET)),
      want: { ok: true },
    },
    {
      name: 'counts a hostname set as a duplicate whatever its order and capitalisation',
      ledger: ledger(many(5, 'issued', 6 * DAY, HOUR, () => ['WWW.example.com', 'Example.com'])),
      request: { domains: ['example.com', 'www.example.com'] },
      want: {
        ok: false,
        limit: 'duplicateCertificates',
        scope: 'set:example.com,www.example.com',
        retryAt: later(DAY),
      },
    },
    {
      name: 'does not count a certificate with one more hostname as a duplicate',
      ledger: ledger(many(5, 'issued', 6 * DAY, HOUR, () => [...SET, 'api.example.com'])),
      want: { ok: true },
    },
    {
      name: 'refuses a 51st certificate for a registered domain, counting every subdomain under it',
      ledger: ledger(many(50, 'issued', 5 * DAY, HOUR, (i) => [`h${i}.example.com`])),
      request: { domains: ['new.example.com'] },
      want: {
        ok: false,
        limit: 'certificatesPerRegisteredDomain',
        scope: 'domain:example.com',
        retryAt: later(2 * DAY),
        says: [
          '50 certificates for the registered domain example.com were issued in the last 7 days (the limit is 50)',
        ],
      },
    },
    {
      name: 'counts a certificate with several names under one registered domain only once',
      ledger: ledger([
        ...many(48, 'issued', 5 * DAY, HOUR, (i) => [`h${i}.example.com`]),
        ev('issued', DAY, ['a.example.com', 'b.example.com', 'c.example.com']),
      ]),
      request: { domains: ['new.example.com'] },
      want: { ok: true },
    },
    {
      name: 'checks every registered domain in a set and names the exhausted one',
      ledger: ledger(many(50, 'issued', 3 * DAY, MIN, (i) => [`h${i}.example.org`])),
      request: { domains: ['a.example.com', 'a.example.org'] },
      want: {
        ok: false,
        limit: 'certificatesPerRegisteredDomain',
        scope: 'domain:example.org',
        retryAt: later(4 * DAY),
      },
    },
    {
      name: 'counts certificates issued to another account of the same CA against the registered domain',
      ledger: ledger(many(50, 'issued', 3 * DAY, MIN, (i) => [`h${i}.example.com`], OTHER)),
      request: { domains: ['new.example.com'] },
      want: {
        ok: false,
        limit: 'certificatesPerRegisteredDomain',
        scope: 'domain:example.com',
        retryAt: later(4 * DAY),
      },
    },
    {
      name: 'keeps two github.io sites apart: one exhausted site does not stop the other',
      ledger: ledger(many(50, 'issued', 3 * DAY, MIN, (i) => [`h${i}.x.github.io`])),
      request: { domains: ['y.github.io'] },
      want: { ok: true },
    },
    {
      name: 'refuses an order after 5 failed validations of one of its hostnames in the last hour and names that hostname',
      ledger: ledger(many(5, 'failedValidation', 50 * MIN, MIN, () => ['www.example.com'])),
      request: { domains: SET },
      want: {
        ok: false,
        limit: 'failedValidationsPerHostname',
        scope: 'hostname:www.example.com',
        retryAt: later(10 * MIN),
        says: [
          '5 validations of www.example.com by account https://acme.test/acct/1 failed in the last hour (the limit is 5)',
        ],
      },
    },
    {
      name: 'does not count failed validations of another account',
      ledger: ledger(many(5, 'failedValidation', 50 * MIN, MIN, () => ['example.com'], OTHER)),
      want: { ok: true },
    },
    {
      name: 'allows the order again exactly one hour after the oldest failed validation',
      ledger: ledger(many(5, 'failedValidation', HOUR, MIN, () => ['example.com'])),
      want: { ok: true },
    },
    {
      name: 'refuses the 301st order of an account within 3 hours',
      ledger: ledger(many(300, 'order', 2 * HOUR, 10_000, (i) => [`h${i}.example.net`])),
      want: {
        ok: false,
        limit: 'newOrdersPerAccount',
        scope: `account:${ACCT}`,
        retryAt: later(HOUR),
        says: [
          '300 new orders were created by account https://acme.test/acct/1 in the last 3 hours',
        ],
      },
    },
    {
      name: 'does not count orders of another account against this one',
      ledger: ledger(many(300, 'order', 2 * HOUR, 10_000, () => SET, OTHER)),
      want: { ok: true },
    },
    {
      name: 'refuses an order while the CA’s block on its registered domain lasts, and says the CA asked',
      ledger: ledger(
        [],
        [{ scope: 'domain:example.com', until: later(2 * HOUR).toISOString(), reason: 'too many' }],
      ),
      want: {
        ok: false,
        limit: 'blocked',
        scope: 'domain:example.com',
        retryAt: later(2 * HOUR),
        says: ['the CA refused an order for the registered domain example.com as rate limited'],
      },
    },
    {
      name: 'allows the order exactly when the block expires',
      ledger: ledger([], [{ scope: 'domain:example.com', until: NOW.toISOString(), reason: 'x' }]),
      want: { ok: true },
    },
    {
      name: 'ignores a block on another hostname set',
      ledger: ledger(
        [],
        [{ scope: 'set:example.com', until: later(HOUR).toISOString(), reason: 'x' }],
      ),
      want: { ok: true },
    },
    {
      name: 'stops every order of an account blocked as a whole',
      ledger: ledger(
        [],
        [{ scope: `account:${ACCT}`, until: later(HOUR).toISOString(), reason: 'x' }],
      ),
      request: { domains: ['anything.example.org'] },
      want: { ok: false, limit: 'blocked', scope: `account:${ACCT}`, retryAt: later(HOUR) },
    },
    {
      name: 'names the budget that lifts last when two are exhausted, since the order waits for both',
      ledger: ledger(
        [
          ...many(5, 'issued', 6 * DAY, HOUR, () => SET),
          ...many(5, 'failedValidation', 50 * MIN, MIN, () => ['example.com']),
        ],
        [{ scope: `account:${ACCT}`, until: later(HOUR).toISOString(), reason: 'x' }],
      ),
      want: {
        ok: false,
        limit: 'duplicateCertificates',
        scope: 'set:example.com,www.example.com',
        retryAt: later(DAY),
      },
    },
    {
      name: 'waits until enough certificates age out when more than the limit were counted',
      ledger: ledger(many(7, 'issued', 6 * DAY, DAY, () => SET)),
      want: {
        ok: false,
        limit: 'duplicateCertificates',
        scope: 'set:example.com,www.example.com',
        retryAt: later(3 * DAY),
      },
    },
    {
      name: 'allows under the staging limits what the production limits refuse',
      ledger: ledger(many(5, 'issued', 6 * DAY, DAY, () => SET)),
      limits: STAGING,
      want: { ok: true },
    },
    {
      name: 'skips a check whose limit is configured as Infinity',
      ledger: ledger(many(5, 'issued', 6 * DAY, DAY, () => SET)),
      limits: { ...PROD, duplicateCertificates: { limit: Infinity, windowMs: 7 * DAY } },
      want: { ok: true },
    },
    {
      name: 'counts events stamped in the future, so a skewed clock errs on the side of waiting',
      ledger: ledger([
        ...many(4, 'issued', 6 * DAY, DAY, () => SET),
        { at: later(HOUR).toISOString(), kind: 'issued', account: ACCT, domains: SET },
      ]),
      want: {
        ok: false,
        limit: 'duplicateCertificates',
        scope: 'set:example.com,www.example.com',
        retryAt: later(DAY),
      },
    },
    {
      name: 'says "1 certificate was" when a limit of one is reached',
      ledger: ledger([ev('issued', DAY, SET)]),
      limits: { ...PROD, duplicateCertificates: { limit: 1, windowMs: 7 * DAY } },
      want: {
        ok: false,
        limit: 'duplicateCertificates',
        scope: 'set:example.com,www.example.com',
        retryAt: later(6 * DAY),
        says: [
          '1 certificate for exactly these hostnames (example.com, www.example.com) was issued',
        ],
      },
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const request = { account: c.request?.account ?? ACCT, domains: c.request?.domains ?? SET };
      const got = checkBudget(c.ledger, request, c.limits ?? PROD, NOW);
      if (c.want.ok) {
        assert.deepEqual(got, { ok: true }, got.ok ? '' : got.message);
        return;
      }
      assert.equal(got.ok, false, 'expected a refusal');
      if (got.ok) return;
      assert.equal(got.limit, c.want.limit, got.message);
      assert.equal(got.scope, c.want.scope, got.message);
      assert.equal(got.retryAt.toISOString(), c.want.retryAt.toISOString(), got.message);
      assert.ok(
        got.message.endsWith(`next possible at ${c.want.retryAt.toISOString()}`),
        got.message,
      );
      for (const s of c.want.says ?? []) assert.ok(got.message.includes(s), got.message);
    });
  }

  it('refuses again after the refused order’s retryAt only if something new was spent', () => {
    const l = ledger(many(5, 'issued', 6 * DAY, DAY, () => SET));
    const first = checkBudget(l, { account: ACCT, domains: SET }, PROD, NOW);
    assert.equal(first.ok, false);
    if (first.ok) return;
    assert.deepEqual(checkBudget(l, { account: ACCT, domains: SET }, PROD, first.retryAt), {
      ok: true,
    });
    assert.equal(
      checkBudget(l, { account: ACCT, domains: SET }, PROD, new Date(first.retryAt.getTime() - 1))
        .ok,
      false,
    );
  });
});

describe('rate limits: record, recordRateLimited, prune', () => {
  it('records an event with its hostnames lowercased, deduplicated and sorted, without touching the old ledger', () => {
    const before = emptyLedger();
    const after = record(before, {
      at: '2026-06-01T00:00:00Z',
      kind: 'issued',
      account: ACCT,
      domains: ['WWW.Example.com', 'example.com', 'www.example.com.'],
    });
    assert.deepEqual(before, { events: [], blocks: [] });
    assert.deepEqual(after.events, [
      {
        at: '2026-06-01T00:00:00.000Z',
        kind: 'issued',
        account: ACCT,
        domains: ['example.com', 'www.example.com'],
      },
    ]);
  });

  it('refuses to record an event whose time is not a date', () => {
    assert.throws(
      () => record(emptyLedger(), { at: 'yesterday', kind: 'order', account: ACCT, domains: [] }),
      RangeError,
    );
  });

  it('blocks a scope until now plus the Retry-After the CA sent', () => {
    const l = recordRateLimited(emptyLedger(), 'domain:example.com', 5400, NOW, 'too many');
    assert.deepEqual(l.blocks, [
      { scope: 'domain:example.com', until: later(90 * MIN).toISOString(), reason: 'too many' },
    ]);
  });

  it('blocks for an hour when the CA sent no usable Retry-After', () => {
    const l = recordRateLimited(emptyLedger(), `account:${ACCT}`, undefined, NOW, 'x');
    assert.equal(l.blocks[0]?.until, later(HOUR).toISOString());
  });

  it('keeps the longer block when the same scope is blocked twice, and replaces a shorter one', () => {
    const long = recordRateLimited(emptyLedger(), 'set:a.test', 7200, NOW, 'first');
    const kept = recordRateLimited(long, 'set:a.test', 60, NOW, 'second');
    assert.deepEqual(kept.blocks, long.blocks);
    const replaced = recordRateLimited(long, 'set:a.test', 3 * 3600, NOW, 'third');
    assert.deepEqual(replaced.blocks, [
      { scope: 'set:a.test', until: later(3 * HOUR).toISOString(), reason: 'third' },
    ]);
  });

  it('prunes orders older than 3 hours, failures older than an hour and expired blocks, and keeps certificates from 6 days ago', () => {
    const l = ledger(
      [
        ev('order', 3 * HOUR, SET),
        ev('order', 2 * HOUR, SET),
        ev('failedValidation', HOUR, ['example.com']),
        ev('failedValidation', 59 * MIN, ['example.com']),
        ev('issued', 7 * DAY, SET),
        ev('issued', 6 * DAY, SET),
      ],
      [
        { scope: 'domain:example.com', until: ago(1), reason: 'old' },
        { scope: 'set:example.com', until: later(1).toISOString(), reason: 'live' },
      ],
    );
    const p = prune(l, PROD, NOW);
    assert.deepEqual(
      p.events.map((e) => `${e.kind}@${e.at}`),
      [`order@${ago(2 * HOUR)}`, `failedValidation@${ago(59 * MIN)}`, `issued@${ago(6 * DAY)}`],
    );
    assert.deepEqual(
      p.blocks.map((b) => b.reason),
      ['live'],
    );
  });

  it('prunes nothing any check still counts: every decision is the same before and after', () => {
    const l = ledger(
      [
        ...many(5, 'issued', 8 * DAY, DAY, () => SET),
        ...many(50, 'issued', 7 * DAY, 3 * HOUR, (i) => [`h${i}.example.com`]),
        ...many(6, 'failedValidation', 2 * HOUR, 20 * MIN, () => ['www.example.com']),
        ...many(300, 'order', 4 * HOUR, 40_000, () => SET),
      ],
      [{ scope: 'set:x.example.com', until: later(HOUR).toISOString(), reason: 'x' }],
    );
    const p = prune(l, PROD, NOW);
    assert.ok(p.events.length < l.events.length, 'pruned nothing');
    for (let h = 0; h <= 8 * 24; h += 1) {
      const at = later(h * HOUR);
      for (const domains of [SET, ['x.example.com'], ['www.example.com'], ['a.example.com']]) {
        const req = { account: ACCT, domains };
        assert.deepEqual(checkBudget(p, req, PROD, at), checkBudget(l, req, PROD, at));
      }
    }
  });
});

describe('rate limits: persistence', () => {
  it('survives a JSON round trip with the same content and the same decisions', () => {
    let l = ledger([
      ...many(5, 'issued', 6 * DAY, DAY, () => SET),
      ev('failedValidation', 10 * MIN, ['www.example.com']),
      ev('order', HOUR, SET),
    ]);
    l = recordRateLimited(l, 'domain:example.org', 3600, NOW, 'too many certificates');
    const back = parseLedger(JSON.stringify(l));
    assert.deepEqual(back, l);
    for (const domains of [SET, ['a.example.org'], ['other.example.net']]) {
      const req = { account: ACCT, domains };
      assert.deepEqual(checkBudget(back, req, PROD, NOW), checkBudget(l, req, PROD, NOW));
    }
  });

  it('reads a missing, unparsable or foreign file as an empty ledger', () => {
    for (const text of [undefined, '', '{not json', 'null', '[]', '{"events": 3}']) {
      assert.deepEqual(parseLedger(text), emptyLedger(), String(text));
    }
  });

  it('drops malformed entries of a damaged file and keeps the well-formed ones', () => {
    const good = { at: ago(HOUR), kind: 'order', account: ACCT, domains: ['example.com'] };
    const text = JSON.stringify({
      events: [
        good,
        { ...good, at: 'not a date' },
        { ...good, kind: 'revoked' },
        { ...good, domains: 'example.com' },
        null,
      ],
      blocks: [
        { scope: 'set:a.test', until: later(HOUR).toISOString(), reason: 'x' },
        { scope: 'set:b.test', until: 42, reason: 'x' },
      ],
    });
    const l = parseLedger(text);
    assert.deepEqual(l.events, [good]);
    assert.deepEqual(
      l.blocks.map((b) => b.scope),
      ['set:a.test'],
    );
  });
});
