import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { identifierType } from '../domain/ip-address.js';
import type { CertBundle, CertSpec, KeyType } from '../domain/types.js';
import type { Clock } from '../lifecycle/clock.js';
import { generatePrivateKey, importKeyPair, signingAlgorithm } from './keys.js';
import type { Issuer } from './issuer.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The placeholder written before any CA has answered, so an nginx configured
 * for TLS can start (it refuses to without a certificate file).
 */
export class SelfSignedIssuer implements Issuer {
  readonly phase = 'self-signed' as const;
  readonly directoryUrl = '';

  constructor(
    private readonly clock: Clock,
    private readonly validityDays = 90,
  ) {}

  async issue(spec: CertSpec, keyType: KeyType): Promise<CertBundle> {
    const privkey = await generatePrivateKey(keyType);
    const keys = await importKeyPair(privkey, keyType);
    const now = this.clock.now().getTime();
    // Positive 16-byte serial (RFC 5280 §4.1.2.2: at most 20 octets, positive).
    const serial = randomBytes(16);
    serial[0] = (serial[0] ?? 0) & 0x7f;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial.toString('hex'),
      name: `CN=${spec.domains[0] ?? spec.name}, O=acme-sidecar placeholder`,
      notBefore: new Date(now - 60 * 60 * 1000),
      notAfter: new Date(now + this.validityDays * DAY_MS),
      signingAlgorithm: signingAlgorithm(keyType),
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(
          spec.domains.map((d) => ({ type: identifierType(d), value: d })),
        ),
      ],
    });
    const pem = cert.toString('pem') + '\n';
    return { cert: pem, chain: '', fullchain: pem, privkey };
  }
}
