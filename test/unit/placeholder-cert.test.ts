// The hand-written placeholder certificate (src/acme/placeholder-cert.ts)
// is, field for field, the one @peculiar/x509 made before: the same
// to-be-signed bytes for the same inputs, and a signature that verifies.
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { generatePrivateKey, importKeyPair, signingAlgorithm } from '../../src/acme/keys.js';
import { ipBytes, placeholderCertificate } from '../../src/acme/placeholder-cert.js';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import { KEY_TYPES, type KeyType } from '../../src/domain/types.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** The first element inside the outer SEQUENCE of a DER certificate: its TBSCertificate. */
function tbsOf(der: Buffer): Buffer {
  const outerHeader = 2 + ((der[1] ?? 0) & 0x80 ? (der[1] ?? 0) & 0x7f : 0);
  const lenByte = der[outerHeader + 1] ?? 0;
  const lenBytes = lenByte & 0x80 ? lenByte & 0x7f : 0;
  let len = lenBytes ? 0 : lenByte;
  for (let i = 0; i < lenBytes; i++) len = len * 256 + (der[outerHeader + 2 + i] ?? 0);
  return der.subarray(outerHeader, outerHeader + 2 + lenBytes + len);
}

const NAMES = ['a.example', '*.b.example', '127.0.0.1', '2001:db8::1', '::1'];

describe('placeholder certificate', () => {
  for (const keyType of KEY_TYPES as readonly KeyType[]) {
    it(`${keyType}: the same TBSCertificate as @peculiar/x509 makes, and a valid signature`, async function () {
      this.timeout(20_000);
      const privkey = await generatePrivateKey(keyType);
      const serial = Buffer.from('00' + '5a'.repeat(15), 'hex');
      const notBefore = new Date('2026-01-01T00:00:00Z');
      const notAfter = new Date('2050-06-01T12:30:45Z');
      const ours = placeholderCertificate(
        {
          serial,
          commonName: NAMES[1] as string,
          organization: 'acme-sidecar placeholder',
          notBefore,
          notAfter,
          names: NAMES.map((value) => ({
            type: value.includes('example') ? ('dns' as const) : ('ip' as const),
            value,
          })),
        },
        createPrivateKey(privkey),
        keyType,
      );
      const ref = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: serial.subarray(1).toString('hex'),
        name: `CN=${NAMES[1]}, O=acme-sidecar placeholder`,
        notBefore,
        notAfter,
        signingAlgorithm: signingAlgorithm(keyType),
        keys: await importKeyPair(privkey, keyType),
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension(
            NAMES.map((value) => ({
              type: value.includes('example') ? ('dns' as const) : ('ip' as const),
              value,
            })),
          ),
        ],
      });
      const cert = new X509Certificate(ours);
      assert.equal(
        tbsOf(cert.raw).toString('hex'),
        tbsOf(Buffer.from(ref.rawData)).toString('hex'),
      );
      assert.ok(cert.verify(cert.publicKey), 'self-signature verifies');
      assert.equal(
        cert.subjectAltName,
        'DNS:a.example, DNS:*.b.example, IP Address:127.0.0.1, IP Address:2001:DB8:0:0:0:0:0:1, IP Address:0:0:0:0:0:0:0:1',
      );
      assert.match(
        ours,
        /^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{64}\n)*[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE-----$/,
      );
    });
  }

  it('SelfSignedIssuer: a certificate for the names whose key is the bundle key', async () => {
    const clock = new FixedClock(new Date('2026-03-01T00:00:00Z'));
    const b = await new SelfSignedIssuer(clock).issue(
      { name: 'x', domains: ['x.example', '192.0.2.7'], source: 'test' } as never,
      'ecdsa-p256',
    );
    const cert = new X509Certificate(b.cert);
    assert.ok(cert.checkPrivateKey(createPrivateKey(b.privkey)));
    assert.equal(cert.subject, 'CN=x.example\nO=acme-sidecar placeholder');
    assert.equal(cert.validFrom, 'Feb 28 23:00:00 2026 GMT');
    assert.equal(cert.validTo, 'May 30 00:00:00 2026 GMT');
    assert.equal(b.fullchain, b.cert);
    assert.ok(b.cert.endsWith('-----END CERTIFICATE-----\n'));
  });

  it('ipBytes: IPv4, IPv6 with and without ::, and an embedded IPv4 part', () => {
    assert.equal(ipBytes('192.0.2.7').toString('hex'), 'c0000207');
    assert.equal(ipBytes('::1').toString('hex'), '0'.repeat(31) + '1');
    assert.equal(ipBytes('2001:db8::1').toString('hex'), '20010db8' + '0'.repeat(23) + '1');
    assert.equal(ipBytes('1:2:3:4:5:6:7:8').toString('hex'), '00010002000300040005000600070008');
    assert.equal(ipBytes('::ffff:192.0.2.7').toString('hex'), '0'.repeat(20) + 'ffffc0000207');
    assert.throws(() => ipBytes('x.example'));
  });
});
