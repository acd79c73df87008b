// ALLOWED_DOMAINS matching (src/domain/allowed-domains.ts): suffix match on
// label boundaries, case-insensitive, one trailing dot ignored.
import assert from 'node:assert/strict';
import {
  allowedBy,
  disallowedHostnames,
  isAllowedHostname,
  parseAllowedDomains,
} from '../../src/domain/allowed-domains.js';

describe('ALLOWED_DOMAINS matching', () => {
  const cases: { name: string; host: string; allowed: string[]; ok: boolean }[] = [
    { name: 'allows the domain itself', host: 'example.com', allowed: ['example.com'], ok: true },
    {
      name: 'allows a name under it',
      host: 'shop.example.com',
      allowed: ['example.com'],
      ok: true,
    },
    {
      name: 'allows a name several labels under it',
      host: 'a.b.c.example.com',
      allowed: ['example.com'],
      ok: true,
    },
    {
      name: 'refuses a name that only ends with the same letters',
      host: 'badexample.com',
      allowed: ['example.com'],
      ok: false,
    },
    {
      name: 'refuses the parent of an allowed domain',
      host: 'example.com',
      allowed: ['shop.example.com'],
      ok: false,
    },
    {
      name: 'refuses a name where the domain is only a prefix',
      host: 'example.com.evil.org',
      allowed: ['example.com'],
      ok: false,
    },
    { name: 'ignores case', host: 'Shop.EXAMPLE.com', allowed: ['example.COM'], ok: true },
    {
      name: 'ignores a trailing dot on either side',
      host: 'shop.example.com.',
      allowed: ['example.com.'],
      ok: true,
    },
    { name: 'allows anything when the list is empty', host: 'evil.org', allowed: [], ok: true },
    {
      name: 'allows when any entry matches',
      host: 'x.example.org',
      allowed: ['example.com', 'example.org'],
      ok: true,
    },
    {
      name: 'allows a wildcard under it',
      host: '*.example.com',
      allowed: ['example.com'],
      ok: true,
    },
    {
      name: 'refuses a wildcard above the allowed domain',
      host: '*.example.com',
      allowed: ['shop.example.com'],
      ok: false,
    },
    {
      name: 'allows an IP address listed as itself',
      host: '127.0.0.1',
      allowed: ['127.0.0.1'],
      ok: true,
    },
    {
      name: 'refuses an IP address that only ends with an entry',
      host: '10.0.0.1',
      allowed: ['0.0.1'],
      ok: false,
    },
    { name: 'allows an IPv6 address listed as itself', host: '::1', allowed: ['::1'], ok: true },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(isAllowedHostname(c.host, c.allowed), c.ok));
  }

  it('names the entry that allows a hostname', () => {
    assert.equal(allowedBy('a.example.org', ['example.com', 'example.org']), 'example.org');
    assert.equal(allowedBy('a.example.net', ['example.com']), undefined);
  });

  it('lists the hostnames outside the list, in order', () => {
    assert.deepEqual(
      disallowedHostnames(['a.example.com', 'b.evil.org', 'c.evil.net'], ['example.com']),
      ['b.evil.org', 'c.evil.net'],
    );
  });

  it('parses the setting: trimmed, lowercase, no trailing dot, no empty or repeated entries', () => {
    assert.deepEqual(parseAllowedDomains(' Example.com. ,, example.org,example.com'), [
      'example.com',
      'example.org',
    ]);
    assert.deepEqual(parseAllowedDomains(''), []);
  });
});
