import assert from 'node:assert/strict';
import { SidecarError } from '../../src/domain/errors.js';
import {
  accountKeyKey,
  accountPrefix,
  accountRecordKey,
  ariKey,
  backoffKey,
  certLockName,
  clusterKeyLayout,
  orderJournalKey,
  rateLedgerKey,
  rateLedgerLockName,
  storedKey,
} from '../../src/store/keys.js';
import { assertStoreKey } from '../../src/store/store.js';

const CA = 'https://acme-staging-v02.api.letsencrypt.org/directory';
const LONG = 'a'.repeat(5000);

/** Builders that take a certificate name (or cluster name) as one segment. */
const nameBuilders: [string, (name: string) => string][] = [
  ['storedKey', (n) => storedKey(n, 'production')],
  ['backoffKey', (n) => backoffKey(n)],
  ['ariKey', (n) => ariKey(n, 'production')],
  ['certLockName', (n) => certLockName(n)],
  ['orderJournalKey', (n) => orderJournalKey(CA, n)],
  ['clusterKeyLayout', (n) => clusterKeyLayout(n).root],
];

const isKeyInvalid = (err: unknown) =>
  err instanceof SidecarError && err.code === 'STORE_KEY_INVALID';

describe('store/keys: the store key layout', () => {
  const layout: [string, () => string, string][] = [
    [
      'keeps a stored certificate under certs/<name>/<phase>.json',
      () => storedKey('www.example.com', 'self-signed'),
      'certs/www.example.com/self-signed.json',
    ],
    [
      'keeps the retry schedule beside it',
      () => backoffKey('www.example.com'),
      'certs/www.example.com/backoff.json',
    ],
    [
      'keeps the ARI record beside the certificate it speaks for',
      () => ariKey('www.example.com', 'staging'),
      'certs/www.example.com/staging.ari.json',
    ],
    [
      'names the certificate lock cert-<name>',
      () => certLockName('www.example.com'),
      'cert-www.example.com',
    ],
    [
      'keeps an account under acme/<host>-<hash of the URL>',
      () => accountPrefix(CA),
      'acme/acme-staging-v02.api.letsencrypt.org-67f275065231',
    ],
    [
      'keeps the port in the account prefix',
      () => accountPrefix('https://localhost:14000/dir'),
      'acme/localhost-14000-929abca72d65',
    ],
    [
      'keeps the account key and record in the account prefix',
      () => `${accountKeyKey(CA)} ${accountRecordKey(CA)}`,
      'acme/acme-staging-v02.api.letsencrypt.org-67f275065231/account-key.pem acme/acme-staging-v02.api.letsencrypt.org-67f275065231/account.json',
    ],
    [
      'keeps an order in flight under the account, by certificate name',
      () => orderJournalKey(CA, 'www'),
      'acme/acme-staging-v02.api.letsencrypt.org-67f275065231/orders/www.json',
    ],
    [
      'keeps the rate-limit ledger under the account, locked by the account segment',
      () => `${rateLedgerKey(CA)} ${rateLedgerLockName(CA)}`,
      'acme/acme-staging-v02.api.letsencrypt.org-67f275065231/rate-limits.json rate-acme-staging-v02.api.letsencrypt.org-67f275065231',
    ],
    [
      'puts a cluster under /acme-sidecar/<cluster>/',
      () => JSON.stringify(clusterKeyLayout('prod')),
      JSON.stringify({
        root: '/acme-sidecar/prod/',
        kv: '/acme-sidecar/prod/kv/',
        locks: '/acme-sidecar/prod/locks/',
        coord: '/acme-sidecar/prod/coord/',
        keyCheck: '/acme-sidecar/prod/key-check',
      }),
    ],
  ];
  for (const [name, build, expected] of layout) {
    it(name, () => assert.equal(build(), expected));
  }

  // Every builder taking a name refuses anything that is not one plain segment.
  const hostileNames: [string, string][] = [
    ['refuses a name that climbs out with ../', '../x'],
    ['refuses a name that is only ..', '..'],
    ['refuses a name that climbs out in the middle (a/../../b)', 'a/../../b'],
    ['refuses a name with a slash, which would add a level', 'a/b'],
    ['refuses an empty name', ''],
    ['refuses a name with a NUL byte', 'a\0b'],
    ['refuses a very long name (5000 characters)', LONG],
    ['refuses a name starting with a dot (a hidden file)', '.x'],
    ['refuses a name with a backslash', 'a\\..\\b'],
  ];
  for (const [builder, build] of nameBuilders) {
    for (const [what, hostile] of hostileNames) {
      it(`${builder} ${what} with STORE_KEY_INVALID`, () => {
        assert.throws(() => build(hostile), isKeyInvalid);
      });
    }
  }

  // The account prefix is built from a URL: encoded, never refused.
  const hostileUrls: [string, string, RegExp][] = [
    [
      'encodes a host of dots (https://../) into one plain segment',
      'https://../dir',
      /^acme\/_-[0-9a-f]{12}$/,
    ],
    ['encodes a host with a run of dots', 'https://a..b/dir', /^acme\/a_b-[0-9a-f]{12}$/],
    [
      'encodes a path that climbs (https://ca/../../x) by ignoring it but for the hash',
      'https://ca.test/../../x',
      /^acme\/ca\.test-[0-9a-f]{12}$/,
    ],
    ['encodes an empty host', 'file:///etc/passwd', /^acme\/_-[0-9a-f]{12}$/],
    ['encodes an IPv6 host', 'https://[::1]:14000/dir', /^acme\/___1_-14000-[0-9a-f]{12}$/],
    [
      'cuts a very long host to 100 characters, the hash keeping it unique',
      `https://${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}/dir`,
      new RegExp(`^acme/${'a'.repeat(60)}\\.${'b'.repeat(39)}-[0-9a-f]{12}$`),
    ],
  ];
  for (const [name, url, expected] of hostileUrls) {
    it(`accountPrefix ${name}`, () => {
      const prefix = accountPrefix(url);
      assert.match(prefix, expected);
      assertStoreKey(`${prefix}/account.json`);
    });
  }

  it('accountPrefix gives two URLs on one host two prefixes', () => {
    assert.notEqual(accountPrefix('https://ca.test/a'), accountPrefix('https://ca.test/b'));
  });
});
