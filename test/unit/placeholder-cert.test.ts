// The hand-written placeholder certificate (createSelfSignedDer in
// src/acme/der.ts) is, field for field, the one @peculiar/x509 made before:
// the same to-be-signed bytes for the same inputs, and a signature that
// verifies.
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { createSelfSignedDer, toPem } from '../../src/acme/der.js';
import { generatePrivateKey } from '../../src/acme/keys.js';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import { KEY_TYPES, type KeyType } from '../../src/domain/types.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** What the placeholder was signed with when @peculiar/x509 made it. */
function signingAlgorithm(
  keyType: KeyType,
): RsaHashedImportParams | EcKeyImportParams | EcdsaParams {
  switch (keyType) {
    case 'ecdsa-p256':
      return { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as EcdsaParams;
    case 'ecdsa-p384':
      return { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' } as EcdsaParams;
    default:
      return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  }
}

async function importKeyPair(pem: string, keyType: KeyType): Promise<CryptoKeyPair> {
  const alg = signingAlgorithm(keyType) as RsaHashedImportParams;
  const priv = createPrivateKey(pem);
  const pkcs8 = priv.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(priv).export({ type: 'spki', format: 'der' });
  return {
    privateKey: (await webcrypto.subtle.importKey('pkcs8', pkcs8, alg, true, [
      'sign',
    ])) as CryptoKey,
    publicKey: (await webcrypto.subtle.importKey('spki', spki, alg, true, ['verify'])) as CryptoKey,
  };
}

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
      const ours = toPem(
        'CERTIFICATE',
        createSelfSignedDer(
          {
            serial,
            subject: [
              ['CN', NAMES[1] as string],
              ['O', 'acme-sidecar placeholder'],
            ],
            notBefore,
            notAfter,
            altNames: NAMES,
          },
          privkey,
        ),
      ).trimEnd();
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
        // One known difference: @peculiar/x509 writes O as a PrintableString
        // (tag 0x13), der.ts every name as a UTF8String (0x0c); RFC 5280
        // §4.1.2.4 allows both.
        tbsOf(Buffer.from(ref.rawData)).toString('hex').replaceAll('060355040a13', '060355040a0c'),
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
});
