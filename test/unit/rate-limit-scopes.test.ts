import assert from 'node:assert/strict';
import {
  checkBudget,
  LETSENCRYPT_PRODUCTION_LIMITS as PROD,
} from '../../src/lifecycle/rate-limits.js';
import { emptyLedger, recordRateLimited } from '../../src/lifecycle/rate-limit-ledger.js';
import {
  registeredDomain,
  scopeForProblem,
  scopesFor,
} from '../../src/lifecycle/rate-limit-scopes.js';

const NOW = new Date('2026-06-01T00:00:00.000Z');
const ACCT = 'https://acme.test/acct/1';

describe('rate limits: registeredDomain', () => {
  const cases: { name: string; host: string; want: string }[] = [
    { name: 'keeps a registered domain as it is', host: 'example.com', want: 'example.com' },
    { name: 'strips subdomains under a .com name', host: 'a.b.example.com', want: 'example.com' },
    {
      name: 'uses the two-label public suffix co.uk from the Public Suffix List',
      host: 'a.b.example.co.uk',
      want: 'example.co.uk',
    },
    {
      name: 'treats a github.io site as its own registered domain, as Let’s Encrypt does with the private section',
      host: 'x.github.io',
      want: 'x.github.io',
    },
    {
      name: 'strips subdomains below a github.io site',
      host: 'a.x.github.io',
      want: 'x.github.io',
    },
    {
      name: 'falls back to the name itself when it is a public suffix with nothing registrable',
      host: 'github.io',
      want: 'github.io',
    },
    {
      name: 'falls back to the name itself for a single label the list does not know',
      host: 'localhost',
      want: 'localhost',
    },
    {
      name: 'treats an IPv4 address as its own registered domain',
      host: '192.0.2.7',
      want: '192.0.2.7',
    },
    {
      name: 'lowercases and drops a trailing dot before looking the name up',
      host: 'WWW.Example.COM.',
      want: 'example.com',
    },
    {
      name: 'uses the last label as the suffix under an unlisted TLD such as .test',
      host: 'api.demo.test',
      want: 'demo.test',
    },
  ];
  for (const c of cases) {
    it(`${c.name} (${c.host} -> ${c.want})`, () => assert.equal(registeredDomain(c.host), c.want));
  }
});

describe('rate limits: scopeForProblem', () => {
  const req = { account: ACCT, domains: ['www.example.com', 'example.com', 'shop.example.org'] };
  const one = { account: ACCT, domains: ['solo.example.net'] };
  const cases: {
    name: string;
    detail: string;
    request?: { account: string; domains: string[] };
    want: string;
  }[] = [
    {
      name: 'blocks the exact hostname set for the 2025 duplicate-certificate message',
      detail:
        'too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s, retry after 2026-06-02 00:00:00 UTC: see https://letsencrypt.org/docs/rate-limits/#new-certificates-per-exact-set-of-identifiers',
      want: 'set:example.com,shop.example.org,www.example.com',
    },
    {
      name: 'blocks the exact hostname set for the older "exact set of domains" message',
      detail:
        'Error creating new order :: too many certificates (5) already issued for this exact set of domains in the last 168 hours: example.com,shop.example.org,www.example.com, retry after 2023-10-12T18:54:27Z',
      want: 'set:example.com,shop.example.org,www.example.com',
    },
    {
      name: 'blocks the quoted registered domain for the 2025 per-domain message',
      detail:
        'too many certificates (50) already issued for "example.org" in the last 168h0m0s, retry after 2026-06-03 00:00:00 UTC',
      want: 'domain:example.org',
    },
    {
      name: 'blocks the registered domain named after a colon in the older per-domain message',
      detail:
        'Error creating new order :: too many certificates already issued for: example.org: see https://letsencrypt.org/docs/rate-limits/',
      want: 'domain:example.org',
    },
    {
      name: 'blocks the only registered domain of a request when the message names none',
      detail: 'too many certificates already issued',
      request: one,
      want: 'domain:example.net',
    },
    {
      name: 'blocks the account when a per-domain message names no domain of a multi-domain request',
      detail: 'too many certificates already issued for "unrelated.test"',
      want: `account:${ACCT}`,
    },
    {
      name: 'blocks the quoted hostname for the 2025 failed-authorizations message',
      detail:
        'too many failed authorizations (5) for "www.example.com" in the last 1h0m0s, retry after 2026-06-01 01:00:00 UTC',
      want: 'hostname:www.example.com',
    },
    {
      name: 'does not mistake example.com for www.example.com when only the longer name is mentioned',
      detail: 'too many failed authorizations for www.example.com recently',
      want: 'hostname:www.example.com',
    },
    {
      name: 'blocks the only hostname for the older failed-authorizations message',
      detail:
        'Error creating new order :: too many failed authorizations recently: see https://letsencrypt.org/docs/failed-validation-limit/',
      request: one,
      want: 'hostname:solo.example.net',
    },
    {
      name: 'blocks the set when the older failed-authorizations message does not say which of several hostnames failed',
      detail: 'Error creating new authz :: too many failed authorizations recently',
      want: 'set:example.com,shop.example.org,www.example.com',
    },
    {
      name: 'blocks the account for the 2025 new-orders message',
      detail:
        'too many new orders (300) from this account in the last 3h0m0s, retry after 2026-06-01 01:00:00 UTC',
      want: `account:${ACCT}`,
    },
    {
      name: 'blocks the account for the older new-orders message',
      detail: 'Error creating new order :: too many new orders recently',
      want: `account:${ACCT}`,
    },
    {
      name: 'falls back to the account for a message it does not recognise',
      detail: 'There were too many requests of a given type',
      want: `account:${ACCT}`,
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(scopeForProblem(c.detail, c.request ?? req), c.want));
  }

  it('returns scopes that checkBudget matches, so a recorded block stops the same order', () => {
    for (const c of cases) {
      const request = c.request ?? req;
      const scope = scopeForProblem(c.detail, request);
      assert.ok(scopesFor(request).includes(scope), `${scope} is not a scope of the request`);
      const l = recordRateLimited(emptyLedger(), scope, 600, NOW, c.detail);
      const got = checkBudget(l, request, PROD, NOW);
      assert.equal(got.ok, false, c.name);
    }
  });
});
