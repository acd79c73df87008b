import { createPrivateKey, randomBytes } from 'node:crypto';
import { identifierType } from '../domain/ip-address.js';
import type { CertBundle, CertSpec, KeyType } from '../domain/types.js';
import type { Clock } from '../lifecycle/clock.js';
import { generatePrivateKey } from './keys.js';
import { placeholderCertificate } from './placeholder-cert.js';
import type { Issuer } from './issuer.js';

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
    const now = this.clock.now().getTime();
    // Positive 16-byte serial (RFC 5280 §4.1.2.2: at most 20 octets, positive).
    const serial = randomBytes(16);
    serial[0] = (serial[0] ?? 0) & 0x7f;
    const pem =
      placeholderCertificate(
        {
          serial,
          commonName: spec.domains[0] ?? spec.name,
          organization: 'acme-sidecar placeholder',
          notBefore: new Date(now - 60 * 60 * 1000),
          notAfter: new Date(now + this.validityDays * DAY_MS),
          names: spec.domains.map((d) => ({ type: identifierType(d), value: d })),
        },
        createPrivateKey(privkey),
        keyType,
      ) + '\n';
    return { cert: pem, chain: '', fullchain: pem, privkey };
  }
}
