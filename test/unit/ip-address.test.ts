// IP-address certificates (RFC 8738, issue 12 item 4): which DOMAINS values
// are addresses, their one written form, their certificate name, the CSR
// they get, and the coded refusal when a CA will not issue them under the
// order's profile.
import assert from 'node:assert/strict';
import { X509Certificate, webcrypto } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { createOrderCsr } from '../../src/acme/csr.js';
import { generatePrivateKey } from '../../src/acme/keys.js';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { WebrootResponder } from '../../src/challenge/webroot-responder.js';
import { parseRenewArgs, type RenewTarget } from '../../src/control/protocol.js';
import { SidecarError } from '../../src/domain/errors.js';
import { isValidCertName, normalizeHostname, parseDomainList } from '../../src/domain/hostnames.js';
import {
  canonicalSanAddress,
  identifierType,
  ipCertName,
  isIpv6CertName,
  parseIpLiteral,
} from '../../src/domain/ip-address.js';
import { ipProfileRefusal } from '../../src/domain/profiles.js';
import type { CertSpec } from '../../src/domain/types.js';
import { backoffKey, orderJournalKey, storedKey } from '../../src/store/keys.js';
import { assertStoreKey } from '../../src/store/store.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { sanNames } from '../../src/util/x509.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

describe('parseIpLiteral', () => {
  const accepted: { name: string; input: string; address: string; family: 4 | 6 }[] = [
    { name: 'accepts an IPv4 address', input: '127.0.0.1', address: '127.0.0.1', family: 4 },
    { name: 'accepts a public IPv4 address', input: '192.0.2.1', address: '192.0.2.1', family: 4 },
    { name: 'accepts the IPv6 loopback', input: '::1', address: '::1', family: 6 },
    {
      name: 'writes an uppercase IPv6 address in lower case',
      input: '2001:DB8::1',
      address: '2001:db8::1',
      family: 6,
    },
    {
      name: 'drops leading zeros of IPv6 groups',
      input: '2001:0db8:0000::0001',
      address: '2001:db8::1',
      family: 6,
    },
    {
      name: 'compresses the longest run of zero groups (RFC 5952 section 4.2.3)',
      input: '2001:db8:0:0:1:0:0:0',
      address: '2001:db8:0:0:1::',
      family: 6,
    },
    {
      name: 'does not compress a single zero group (RFC 5952 section 4.2.2)',
      input: '1:2:3:4:5:6:7::',
      address: '1:2:3:4:5:6:7:0',
      family: 6,
    },
    {
      name: 'writes a fully spelt-out loopback as ::1',
      input: '0:0:0:0:0:0:0:1',
      address: '::1',
      family: 6,
    },
  ];
  for (const c of accepted) {
    it(c.name, () => {
      assert.deepEqual(parseIpLiteral(c.input), {
        kind: 'ip',
        address: c.address,
        family: c.family,
      });
    });
  }

  const refused: { name: string; input: string; why: RegExp }[] = [
    { name: 'refuses a zone id', input: 'fe80::1%eth0', why: /zone id/ },
    { name: 'refuses a bracketed IPv6 address', input: '[::1]', why: /write it bare: ::1/ },
    {
      name: 'refuses leading zeros in an IPv4 octet (octal to some parsers)',
      input: '010.0.0.1',
      why: /leading zeros/,
    },
    { name: 'refuses an IPv4 octet over 255', input: '256.0.0.1', why: /0-255/ },
    { name: 'refuses an IPv4 address with a trailing dot', input: '1.2.3.4.', why: /trailing dot/ },
    {
      name: 'refuses an IPv4-mapped IPv6 address',
      input: '::ffff:192.0.2.1',
      why: /embeds an IPv4 address/,
    },
    { name: 'refuses the IPv4 unspecified address', input: '0.0.0.0', why: /unspecified/ },
    { name: 'refuses the IPv6 unspecified address', input: '::', why: /unspecified/ },
    { name: 'refuses a spelt-out IPv6 unspecified address', input: '0:0::0', why: /unspecified/ },
  ];
  for (const c of refused) {
    it(c.name, () => {
      const r = parseIpLiteral(c.input);
      assert.equal(r.kind, 'invalid', JSON.stringify(r));
      if (r.kind === 'invalid') assert.match(r.why, c.why);
    });
  }

  const hostnames = ['example.com', '127.1', '0x7f.0.0.1', '2130706433', 'a:b', '[example.com]'];
  for (const input of hostnames) {
    it(`leaves ${JSON.stringify(input)} to the hostname rules`, () => {
      assert.deepEqual(parseIpLiteral(input), { kind: 'not-ip' });
    });
  }
});

describe('normalizeHostname with IP addresses', () => {
  const cases: { name: string; input: string; result: string | RegExp }[] = [
    { name: 'accepts an IPv4 address as it is', input: '127.0.0.1', result: '127.0.0.1' },
    { name: 'accepts ::1', input: ' ::1 ', result: '::1' },
    { name: 'writes IPv6 in its RFC 5952 form', input: '2001:DB8:0::1', result: '2001:db8::1' },
    {
      name: 'refuses a zone id with a message naming it',
      input: 'fe80::1%25eth0',
      result: /hostname "fe80::1%25eth0" has a zone id/,
    },
    {
      name: 'refuses a decimal IPv4 form, naming the canonical one',
      input: '2130706433',
      result: /write the address as 127\.0\.0\.1/,
    },
    {
      name: 'refuses a shortened IPv4 form, naming the canonical one',
      input: '127.1',
      result: /write the address as 127\.0\.0\.1/,
    },
    {
      name: 'refuses an IPv4 address with leading zeros',
      input: '127.000.0.1',
      result: /not a canonical IPv4 address/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = normalizeHostname(c.input);
      if (typeof c.result === 'string') {
        assert.deepEqual(r, { ok: true, hostname: c.result });
      } else {
        assert.equal(r.ok, false, JSON.stringify(r));
        if (!r.ok) {
          assert.equal(r.code, 'ip-literal');
          assert.match(r.message, c.result);
        }
      }
    });
  }
});

describe('certificate names of IP addresses', () => {
  const names: { name: string; address: string; certName: string }[] = [
    { name: 'an IPv4 address is its own name', address: '127.0.0.1', certName: '127.0.0.1' },
    { name: 'IPv6 ":" become "-"', address: '2001:db8::1', certName: '2001-db8--1' },
    { name: 'the IPv6 loopback is "--1"', address: '::1', certName: '--1' },
    { name: 'a trailing "::" becomes "--"', address: '2001:db8::', certName: '2001-db8--' },
  ];
  for (const c of names) {
    it(c.name, () => {
      assert.equal(ipCertName(c.address), c.certName);
      assert.equal(isValidCertName(c.certName), true);
    });
  }

  const ipv6Names: { name: string; input: string; valid: boolean }[] = [
    { name: 'accepts the name of a canonical IPv6 address', input: '2001-db8--1', valid: true },
    { name: 'accepts "--1"', input: '--1', valid: true },
    { name: 'refuses uppercase hex', input: '2001-DB8--1', valid: false },
    { name: 'refuses a leading "-" that is no address', input: '--x', valid: false },
    { name: 'refuses an option-like name', input: '-rf', valid: false },
    { name: 'refuses a path', input: '--1/../x', valid: false },
    { name: 'refuses "-" alone', input: '-', valid: false },
    { name: 'refuses an IPv4-mapped form with dots', input: '--ffff-1.2.3.4', valid: false },
  ];
  it('does not take a non-canonical IPv6 form for an address name (one name per address)', () => {
    // Still a name like any other (it starts with a digit), but not an address's.
    assert.equal(isIpv6CertName('0-0-0-0-0-0-0-1'), false);
  });
  for (const c of ipv6Names) {
    it(c.name, () => {
      assert.equal(isIpv6CertName(c.input), c.valid);
      assert.equal(isValidCertName(c.input), c.valid);
    });
  }
});

describe('parseDomainList with IP addresses', () => {
  const spec = (name: string, ...domains: string[]): CertSpec => ({
    name,
    domains,
    source: 'env:DOMAINS',
  });
  const cases: { name: string; input: string; specs: CertSpec[]; codes?: string[] }[] = [
    {
      name: 'names an IPv4 certificate after its address',
      input: '127.0.0.1',
      specs: [spec('127.0.0.1', '127.0.0.1')],
    },
    {
      name: 'names an IPv6 certificate after its address with "-" for ":"',
      input: '::1, 2001:DB8::1',
      specs: [spec('--1', '::1'), spec('2001-db8--1', '2001:db8::1')],
    },
    {
      name: 'puts hostnames and addresses in one certificate, named after the first',
      input: 'www.example.com+192.0.2.1+2001:db8::1',
      specs: [spec('www.example.com', 'www.example.com', '192.0.2.1', '2001:db8::1')],
    },
    {
      name: 'keeps an explicit name for an address',
      input: 'edge=192.0.2.1',
      specs: [spec('edge', '192.0.2.1')],
    },
    {
      name: 'sees two spellings of one IPv6 address as one certificate',
      input: '2001:db8::1, 2001:0DB8:0:0::1',
      specs: [spec('2001-db8--1', '2001:db8::1')],
      codes: ['duplicate-name'],
    },
    {
      name: 'skips an entry with a zone id and keeps the others',
      input: 'fe80::1%eth0, 127.0.0.1',
      specs: [spec('127.0.0.1', '127.0.0.1')],
      codes: ['ip-literal'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { specs, problems } = parseDomainList(c.input, 'env:DOMAINS');
      assert.deepEqual(specs, c.specs);
      assert.deepEqual(
        problems.map((p) => p.code),
        c.codes ?? [],
      );
    });
  }
});

describe('identifierType', () => {
  for (const [value, type] of [
    ['example.com', 'dns'],
    ['127.0.0.1', 'ip'],
    ['::1', 'ip'],
    ['xn--bcher-kva.example', 'dns'],
  ] as const) {
    it(`is ${type} for ${value}`, () => assert.equal(identifierType(value), type));
  }
});

/** The subjectAltName entries and the subject of a CSR, as the CA reads them. */
function csrNames(pem: Buffer): { sans: { type: string; value: string }[]; subject: string } {
  const csr = new x509.Pkcs10CertificateRequest(pem.toString());
  const raw = csr.getExtension('2.5.29.17');
  const ext = raw ? new x509.SubjectAlternativeNameExtension(raw.rawData) : undefined;
  return {
    sans: (ext?.names.items ?? []).map((n) => ({ type: n.type, value: n.value })),
    subject: csr.subject,
  };
}

describe('the CSR of a certificate with IP addresses (RFC 8738 section 3)', () => {
  it('has an IP SAN, not a DNS SAN, and no CN, for an address alone', async () => {
    const key = await generatePrivateKey('ecdsa-p256');
    const { sans, subject } = csrNames(await createOrderCsr(['127.0.0.1'], key));
    assert.deepEqual(sans, [{ type: 'ip', value: '127.0.0.1' }]);
    assert.equal(subject, '');
  });

  it('has an IPv6 SAN for ::1', async () => {
    const key = await generatePrivateKey('ecdsa-p256');
    const { sans } = csrNames(await createOrderCsr(['::1'], key));
    assert.deepEqual(sans, [{ type: 'ip', value: '::1' }]);
  });

  it('takes the CN from the first hostname, never from an address', async () => {
    const key = await generatePrivateKey('ecdsa-p256');
    const { sans, subject } = csrNames(await createOrderCsr(['192.0.2.1', 'www.example.com'], key));
    assert.deepEqual(sans, [
      { type: 'ip', value: '192.0.2.1' },
      { type: 'dns', value: 'www.example.com' },
    ]);
    assert.equal(subject, 'CN=www.example.com');
  });
});

describe('sanNames', () => {
  it('reads IP SANs back in the form DOMAINS values have, beside DNS names', async () => {
    const issuer = new SelfSignedIssuer(new FixedClock(new Date('2026-12-02T00:00:00Z')));
    const bundle = await issuer.issue(
      { name: 'x', domains: ['2001:db8::1', 'a.example.com', '127.0.0.1', '::1'], source: 't' },
      'ecdsa-p256',
    );
    const cert = new X509Certificate(bundle.cert);
    assert.match(cert.subjectAltName ?? '', /IP Address:2001:DB8:0:0:0:0:0:1/);
    assert.deepEqual(sanNames(cert), ['127.0.0.1', '2001:db8::1', '::1', 'a.example.com']);
  });

  for (const [text, out] of [
    ['0:0:0:0:0:0:0:1', '::1'],
    ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['127.0.0.1', '127.0.0.1'],
    ['<invalid>', undefined],
  ] as const) {
    it(`reads "IP Address:${text}" as ${String(out)}`, () => {
      assert.equal(canonicalSanAddress(text), out);
    });
  }
});

describe('ipProfileRefusal', () => {
  const spec: CertSpec = {
    name: '192.0.2.1',
    domains: ['192.0.2.1'],
    source: 'env:DOMAINS',
    profile: 'classic',
    profileFrom: 'ACME_PROFILE',
  };
  const LE_PROFILES = {
    classic: '90 days',
    tlsserver: '45 days',
    shortlived: '160 hours',
  };
  const DIR = 'https://acme-v02.api.letsencrypt.org/directory';
  const boulder = {
    type: 'urn:ietf:params:acme:error:rejectedIdentifier',
    detail: 'Profile "classic" does not permit ip type identifiers',
  };

  it("names shortlived when Let's Encrypt refuses an IP address under classic", () => {
    const err = ipProfileRefusal(boulder, spec, ['192.0.2.1'], LE_PROFILES, DIR);
    assert.ok(err instanceof SidecarError);
    assert.equal(err.code, 'ACME_IP_REFUSED');
    assert.equal(err.retryable, false);
    assert.match(
      err.message,
      /the CA refused the IP address "192\.0\.2\.1" under profile "classic"/,
    );
    assert.match(err.message, /does not permit ip type identifiers/);
    assert.match(err.message, /set ACME_PROFILE to "shortlived"/);
  });

  it('names the label that chose the profile, when a label did', () => {
    const err = ipProfileRefusal(
      boulder,
      { ...spec, profileFrom: 'docker:container/web:io.acme-sidecar.profile' },
      ['192.0.2.1'],
      LE_PROFILES,
      DIR,
    );
    assert.match(
      err?.message ?? '',
      /set docker:container\/web:io\.acme-sidecar\.profile to "shortlived"/,
    );
  });

  it('says "its default profile" and names both settings when no profile was chosen', () => {
    const bare: CertSpec = { name: spec.name, domains: spec.domains, source: spec.source };
    const err = ipProfileRefusal(
      { ...boulder, detail: 'Profile "" does not permit ip type identifiers' },
      bare,
      ['192.0.2.1'],
      LE_PROFILES,
      DIR,
    );
    assert.match(err?.message ?? '', /under its default profile/);
    assert.match(
      err?.message ?? '',
      /set ACME_PROFILE \(or the io\.acme-sidecar\.profile label\) to "shortlived"/,
    );
  });

  it('says the CA does not issue IP certificates when it offers no profiles', () => {
    const err = ipProfileRefusal(
      {
        type: 'urn:ietf:params:acme:error:unsupportedIdentifier',
        detail: 'ip identifiers are not supported',
      },
      spec,
      ['192.0.2.1'],
      undefined,
      DIR,
    );
    assert.equal(err?.code, 'ACME_IP_REFUSED');
    assert.match(err?.message ?? '', /offers no profiles .* does not issue for IP addresses/);
  });

  it('lists the other profiles when shortlived is not among them', () => {
    const err = ipProfileRefusal(boulder, spec, ['192.0.2.1'], { classic: '', ipcerts: '' }, DIR);
    assert.match(
      err?.message ?? '',
      /to a profile of this CA that issues IP-address certificates \(offered: classic, ipcerts\)/,
    );
  });

  it('leaves a refusal of a hostname to the usual classification', () => {
    const err = ipProfileRefusal(
      {
        type: 'urn:ietf:params:acme:error:rejectedIdentifier',
        detail: 'Cannot issue for "bad.example": Domain name is blocked',
      },
      { ...spec, domains: ['bad.example', '192.0.2.1'] },
      ['192.0.2.1'],
      LE_PROFILES,
      DIR,
    );
    assert.equal(err, undefined);
  });

  it('leaves any refusal of an order without addresses alone', () => {
    assert.equal(ipProfileRefusal(boulder, spec, [], LE_PROFILES, DIR), undefined);
  });

  it('leaves other problem types alone (rate limits, unauthorized)', () => {
    const err = ipProfileRefusal(
      { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many ip certificates' },
      spec,
      ['192.0.2.1'],
      LE_PROFILES,
      DIR,
    );
    assert.equal(err, undefined);
  });
});

describe('store keys of IPv6 certificate names', () => {
  const cases: { name: string; key: string; ok: boolean }[] = [
    {
      name: 'accepts a certificate directory named --1',
      key: 'certs/--1/production.json',
      ok: true,
    },
    { name: 'accepts an order journal --1.json', key: 'acme/ca-1/orders/--1.json', ok: true },
    { name: 'accepts 2001-db8--1.ari.json', key: 'certs/2001-db8--1.ari.json', ok: true },
    {
      name: 'refuses a leading "-" that is no address',
      key: 'certs/--x/production.json',
      ok: false,
    },
    { name: 'refuses an option-like segment', key: 'certs/-rf', ok: false },
    { name: 'refuses ".." after an address name', key: 'certs/--1../x', ok: false },
    { name: 'refuses an empty suffix', key: 'certs/--1.', ok: false },
  ];
  for (const c of cases) {
    it(c.name, () => {
      if (c.ok) assert.doesNotThrow(() => assertStoreKey(c.key));
      else assert.throws(() => assertStoreKey(c.key), /invalid store key/);
    });
  }
  it('lays out every key of --1 without refusing it', () => {
    assert.equal(storedKey('--1', 'production'), 'certs/--1/production.json');
    assert.equal(backoffKey('--1'), 'certs/--1/backoff.json');
    assert.match(orderJournalKey('https://ca.example/dir', '--1'), /\/orders\/--1\.json$/);
  });
});

describe('acme-sidecar renew arguments with IP certificate names', () => {
  const cases: { name: string; args: string[]; target: RenewTarget | undefined }[] = [
    { name: 'takes --1 as the name of ::1', args: ['--1'], target: { name: '--1' } },
    { name: 'takes the address ::1 for its name --1', args: ['::1'], target: { name: '--1' } },
    {
      name: 'takes an IPv6 address in any spelling for its name',
      args: ['2001:DB8:0::1'],
      target: { name: '2001-db8--1' },
    },
    {
      name: 'takes an IPv4 address as its name',
      args: ['127.0.0.1'],
      target: { name: '127.0.0.1' },
    },
    {
      name: 'keeps a hostname as it is',
      args: ['www.example.com'],
      target: { name: 'www.example.com' },
    },
    { name: 'keeps --all', args: ['--all'], target: { all: true } },
    { name: 'refuses another option', args: ['--force'], target: undefined },
    { name: 'refuses no argument', args: [], target: undefined },
    { name: 'refuses two names', args: ['a', 'b'], target: undefined },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(parseRenewArgs(c.args), c.target));
  }
});

describe('the HTTP-01 self-check of an IPv6 address (RFC 8738 section 7)', () => {
  it('sends the address in brackets as Host, as the CA does', async () => {
    const hosts: string[] = [];
    const server = http.createServer((req, res) => {
      hosts.push(req.headers.host ?? '');
      res.end('token.key');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const webroot = await mkdtemp(path.join(os.tmpdir(), 'ip-selfcheck-'));
    try {
      const port = (server.address() as AddressInfo).port;
      const responder = new WebrootResponder({
        webroot,
        selfCheck: true,
        selfCheckAddress: `127.0.0.1:${port}`,
        log: silentLogger,
      });
      const token = 'a'.repeat(43);
      await responder.verify('::1', token, 'token.key');
      await responder.verify('127.0.0.1', token, 'token.key');
      assert.deepEqual(hosts, ['[::1]', '127.0.0.1']);
    } finally {
      server.close();
      await rm(webroot, { recursive: true, force: true });
    }
  });
});
