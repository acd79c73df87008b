import { identifierType } from '../domain/ip-address.js';
import { createCsrDer, toPem } from './der.js';

/**
 * The CSR for an order (RFC 8555 §7.4): the hostnames and addresses as
 * subjectAltName, the first hostname as CN, and nothing else. In particular no TLS Feature extension
 * (RFC 7633, "OCSP Must-Staple"): Let's Encrypt turned its OCSP responders
 * off on 2025-08-06 and refuses orders that ask for it, and nothing here
 * fetches or staples OCSP responses (test/unit/no-ocsp.test.ts holds this).
 */
export async function createOrderCsr(domains: readonly string[], privkey: string): Promise<Buffer> {
  // RFC 8738 section 3: an address is an iPAddress SAN (acme-client types
  // each altName with net.isIP), never a dNSName. The CN, which the CA may
  // copy into the certificate, is the first DNS name; a certificate for
  // addresses only has none (Let's Encrypt's shortlived profile, and
  // Pebble, leave the subject empty for them).
  const commonName = domains.find((d) => identifierType(d) === 'dns');
  // acme-client's createCsr put the CN first in the SANs when it was
  // missing; it is always among them here. Built by der.ts (why: there).
  const der = createCsrDer(
    { ...(commonName !== undefined && { commonName }), altNames: domains },
    privkey,
  );
  return Buffer.from(toPem('CERTIFICATE REQUEST', der));
}
