import acme from 'acme-client';

/**
 * The CSR for an order (RFC 8555 §7.4): the hostnames as subjectAltName, the
 * first as CN, and nothing else. In particular no TLS Feature extension
 * (RFC 7633, "OCSP Must-Staple"): Let's Encrypt turned its OCSP responders
 * off on 2025-08-06 and refuses orders that ask for it, and nothing here
 * fetches or staples OCSP responses (test/unit/no-ocsp.test.ts holds this).
 */
export async function createOrderCsr(domains: readonly string[], privkey: string): Promise<Buffer> {
  const [, csr] = await acme.crypto.createCsr(
    { commonName: domains[0], altNames: [...domains] },
    privkey,
  );
  return csr;
}
