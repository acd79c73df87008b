// src/acme/der.ts builds the order CSR and the self-signed placeholder
// without @peculiar/x509. Each structure is checked here by the openssl CLI,
// not by the encoder's own idea of DER, for every key type the sidecar
// makes; the e2e tests (core, key types) have Pebble accept the CSRs.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createOrderCsr } from '../../src/acme/csr.js';
import { ipBytes } from '../../src/acme/der.js';
import { generatePrivateKey } from '../../src/acme/keys.js';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { KEY_TYPES } from '../../src/domain/types.js';
import { bundleProblem } from '../../src/util/x509.js';

const NAMES = ['a.example.test', '*.example.test', '192.0.2.7', '2001:db8::1'];
const OPENSSL_SANS =
  'DNS:a.example.test, DNS:*.example.test, IP Address:192.0.2.7, IP Address:2001:DB8:0:0:0:0:0:1';

const SIG_ALG: Record<string, RegExp> = {
  'ecdsa-p256': /Signature Algorithm: ecdsa-with-SHA256/,
  'ecdsa-p384': /Signature Algorithm: ecdsa-with-SHA384/,
  'rsa-2048': /Signature Algorithm: sha256WithRSAEncryption/,
  'rsa-3072': /Signature Algorithm: sha256WithRSAEncryption/,
  'rsa-4096': /Signature Algorithm: sha256WithRSAEncryption/,
};

describe('der: CSR and self-signed certificate without @peculiar/x509', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'der-test-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const openssl = (args: string[], pem: string): string => {
    const file = join(dir, 'in.pem');
    writeFileSync(file, pem);
    return execFileSync('openssl', [...args, '-in', file], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  };

  for (const keyType of KEY_TYPES) {
    it(`${keyType}: openssl verifies the CSR's signature and reads its names`, async () => {
      const key = await generatePrivateKey(keyType);
      const csr = (await createOrderCsr(NAMES, key)).toString();
      assert.match(csr, /^-----BEGIN CERTIFICATE REQUEST-----\n/);
      const text = openssl(['req', '-verify', '-noout', '-text'], csr);
      assert.match(text, /Subject: CN\s?=\s?a\.example\.test\n/);
      assert.ok(text.includes(OPENSSL_SANS), text);
      assert.match(text, /Digital Signature, Key Encipherment/);
      assert.match(text, SIG_ALG[keyType] as RegExp);
      // The CSR's public key is the key's.
      const pub = execFileSync('openssl', ['pkey', '-pubout'], { input: key, encoding: 'utf8' });
      assert.equal(openssl(['req', '-noout', '-pubkey'], csr), pub);
    });

    it(`${keyType}: openssl reads the placeholder certificate; it signs itself`, async () => {
      const at = new Date('2026-03-04T05:06:07Z');
      const issuer = new SelfSignedIssuer({ now: () => at }, 90);
      const bundle = await issuer.issue({ name: 'svc', domains: NAMES } as never, keyType);
      const text = openssl(['x509', '-noout', '-text'], bundle.cert);
      assert.match(text, /Version: 3 \(0x2\)/);
      assert.match(text, /Issuer: CN\s?=\s?a\.example\.test, O\s?=\s?acme-sidecar placeholder\n/);
      assert.match(text, /Subject: CN\s?=\s?a\.example\.test, O\s?=\s?acme-sidecar placeholder\n/);
      assert.match(text, /Not Before: Mar {2}4 04:06:07 2026 GMT/);
      assert.match(text, /Not After : Jun {2}2 05:06:07 2026 GMT/);
      assert.ok(text.includes(OPENSSL_SANS), text);
      assert.match(text, /Basic Constraints: critical\n\s+CA:FALSE/);
      assert.match(text, /Key Usage: critical\n\s+Digital Signature\n/);
      assert.match(text, /Extended Key Usage: \n\s+TLS Web Server Authentication/);
      assert.match(text, SIG_ALG[keyType] as RegExp);
      // Signed by its own key, and the key matches: openssl and node agree.
      const file = join(dir, 'self.pem');
      writeFileSync(file, bundle.cert);
      execFileSync(
        'openssl',
        ['verify', '-no_check_time', '-CAfile', file, '-check_ss_sig', file],
        {
          stdio: 'pipe',
        },
      );
      assert.equal(bundleProblem(bundle), undefined);
      assert.equal(bundle.fullchain, bundle.cert);
      const x = new X509Certificate(bundle.cert);
      assert.ok(BigInt('0x' + x.serialNumber) > 0n);
    });
  }

  it('a serial with leading zero bytes is encoded minimally (openssl parses it strictly)', async () => {
    // 1 in 256 placeholders start with a zero byte: DER forbids the padding.
    const { createSelfSignedDer, toPem } = await import('../../src/acme/der.js');
    const key = await generatePrivateKey('ecdsa-p256');
    const serial = Buffer.from('00007f0102030405060708090a0b0c0d', 'hex');
    const der = createSelfSignedDer(
      {
        serial,
        subject: [['CN', 'x.test']],
        notBefore: new Date('2049-12-31T23:00:00Z'),
        notAfter: new Date('2050-01-02T00:00:00Z'),
        altNames: ['x.test'],
      },
      key,
    );
    const text = openssl(['x509', '-noout', '-serial', '-dates'], toPem('CERTIFICATE', der));
    assert.match(text, /serial=7F0102030405060708090A0B0C0D\n/);
    // UTCTime before 2050, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5).
    assert.match(text, /notBefore=Dec 31 23:00:00 2049 GMT/);
    assert.match(text, /notAfter=Jan {2}2 00:00:00 2050 GMT/);
  });

  const ips: [string, string][] = [
    ['192.0.2.1', 'c0000201'],
    ['::1', '00000000000000000000000000000001'],
    ['2001:db8::1', '20010db8000000000000000000000001'],
    ['fe80::', 'fe800000000000000000000000000000'],
    ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'],
    ['::ffff:192.0.2.1', '00000000000000000000ffffc0000201'],
    ['64:ff9b::198.51.100.9', '0064ff9b0000000000000000c6336409'],
  ];
  for (const [text, hex] of ips) {
    it(`ipBytes(${text})`, () => assert.equal(ipBytes(text).toString('hex'), hex));
  }
});
