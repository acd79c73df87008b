import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { SidecarError } from '../domain/errors.js';
import { canonicalSanAddress } from '../domain/ip-address.js';
import type { CertBundle, CertMeta, KeyType, Phase } from '../domain/types.js';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The PEM certificates in a chain, in order. */
export function splitPemChain(pem: string): string[] {
  return pem.match(PEM_CERT)?.map((c) => c + '\n') ?? [];
}

/** The base64 body of the first PEM block in `pem`, whitespace removed: its DER, as text. */
function derText(pem: string): string {
  const begin = pem.indexOf('-----BEGIN');
  const start = pem.indexOf('\n', begin);
  const end = pem.indexOf('-----END', start);
  if (begin < 0 || start < 0 || end < 0) return '';
  return pem.slice(start, end).replace(/\s+/g, '');
}

/** Builds the bundle from what an ACME CA returns: the leaf first, then intermediates. */
export function bundleFromFullchain(fullchain: string, privkey: string): CertBundle {
  const parts = splitPemChain(fullchain);
  const [leaf, ...rest] = parts;
  if (!leaf) throw new SidecarError('CHAIN_INVALID', 'the CA returned no certificate');
  return { cert: leaf, chain: rest.join(''), fullchain: parts.join(''), privkey };
}

/** DNS names in the subjectAltName extension, lowercase, sorted. */
export function dnsNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase())
    .sort();
}

/**
 * The DNS names (lowercase) and IP addresses (RFC 8738; written as DOMAINS
 * values are, see domain/ip-address.ts) in the subjectAltName extension,
 * sorted: what a certificate covers, compared with what was asked for.
 */
export function sanNames(cert: X509Certificate): string[] {
  const names: string[] = [];
  for (const s of (cert.subjectAltName ?? '').split(/,\s*/)) {
    if (s.startsWith('DNS:')) names.push(s.slice(4).toLowerCase());
    const ip = s.startsWith('IP Address:') ? canonicalSanAddress(s.slice(11)) : undefined;
    if (ip !== undefined) names.push(ip);
  }
  return names.sort();
}

/**
 * Checks that the key matches the leaf and that each certificate is signed
 * by the next (a self-signed leaf must sign itself). Returns a problem, or
 * undefined when the bundle holds together. Trust in a root is not judged
 * here: the CA's root is the CA directory's business.
 */
export function bundleProblem(bundle: CertBundle): string | undefined {
  try {
    const pems = splitPemChain(bundle.fullchain);
    // The same DER, compared as its base64 text: parsing `cert` as well
    // cost a third of this function (--cpu-prof, issue 15).
    if (pems[0] !== undefined && derText(pems[0]) !== derText(bundle.cert)) {
      return 'fullchain does not start with the leaf';
    }
    const certs = pems.map((p) => new X509Certificate(p));
    const leaf = certs[0];
    if (!leaf) return 'no certificate';
    if (!leaf.checkPrivateKey(createPrivateKey(bundle.privkey))) {
      return 'private key does not match the certificate';
    }
    if (certs.length === 1) {
      return leaf.verify(leaf.publicKey) ? undefined : 'leaf is not signed by a chain certificate';
    }
    for (let i = 0; i + 1 < certs.length; i++) {
      const child = certs[i] as X509Certificate;
      const parent = certs[i + 1] as X509Certificate;
      if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
        return `certificate ${i} is not signed by certificate ${i + 1}`;
      }
    }
    return undefined;
  } catch (err) {
    return `unparseable: ${(err as Error).message}`;
  }
}

export function serialOf(certPem: string): string {
  return new X509Certificate(certPem).serialNumber.toUpperCase();
}

/** The metadata kept beside a certificate, read from the certificate itself. */
export function describeBundle(
  bundle: CertBundle,
  ctx: { name: string; phase: Phase; directoryUrl: string; keyType: KeyType; issuedAt: Date },
): CertMeta {
  const leaf = new X509Certificate(bundle.cert);
  return {
    name: ctx.name,
    phase: ctx.phase,
    domains: sanNames(leaf),
    directoryUrl: ctx.directoryUrl,
    keyType: ctx.keyType,
    notBefore: new Date(leaf.validFrom).toISOString(),
    notAfter: new Date(leaf.validTo).toISOString(),
    serial: leaf.serialNumber.toUpperCase(),
    chainVerified: bundleProblem(bundle) === undefined,
    issuedAt: ctx.issuedAt.toISOString(),
  };
}

/** Verifies `fullchain` up to a trusted root PEM (used by tests and checks). */
export function chainVerifiesTo(fullchain: string, rootPem: string): boolean {
  const certs = splitPemChain(fullchain).map((p) => new X509Certificate(p));
  const root = new X509Certificate(rootPem);
  const last = certs[certs.length - 1];
  if (!last) return false;
  for (let i = 0; i + 1 < certs.length; i++) {
    const c = certs[i] as X509Certificate;
    if (!c.verify((certs[i + 1] as X509Certificate).publicKey)) return false;
  }
  return last.checkIssued(root) && last.verify(root.publicKey);
}

/** True when the public key in `certPem` belongs to `keyPem`. */
export function keyMatches(certPem: string, keyPem: string): boolean {
  const pub = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  const certPub = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return Buffer.compare(pub, certPub) === 0;
}

/** The key type of a PEM private key, or undefined for one we never make. */
export function keyTypeOf(keyPem: string): KeyType | undefined {
  const key = createPrivateKey(keyPem);
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec') {
    if (d?.namedCurve === 'prime256v1') return 'ecdsa-p256';
    if (d?.namedCurve === 'secp384r1') return 'ecdsa-p384';
    return undefined;
  }
  if (key.asymmetricKeyType === 'rsa') {
    const t = `rsa-${d?.modulusLength ?? 0}`;
    return t === 'rsa-2048' || t === 'rsa-3072' || t === 'rsa-4096' ? t : undefined;
  }
  return undefined;
}

/**
 * Did `issuerPem` sign the leaf of `bundle`? (Its name is the leaf's issuer
 * and its key verifies the leaf's signature.)
 */
export function signedBy(leafPem: string, issuerPem: string): boolean {
  try {
    const leaf = new X509Certificate(leafPem);
    const issuer = new X509Certificate(issuerPem);
    return leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey);
  } catch {
    return false;
  }
}
