/**
 * The ARI CertID of a certificate (RFC 9773 section 4.1): the base64url of
 * its Authority Key Identifier's keyIdentifier, a dot, and the base64url of
 * its serial number's DER INTEGER content bytes (a leading zero byte kept).
 * The same string is the `replaces` field of a renewal's newOrder
 * (section 5).
 *
 * Written by hand: acme-client 5.4 has no ARI, and @peculiar/x509 gives
 * both fields as hex, so this is two hex-to-base64url conversions around it.
 */
import { AuthorityKeyIdentifierExtension, X509Certificate } from '@peculiar/x509';
import { SidecarError } from '../domain/errors.js';

export function ariCertId(certPem: string): string {
  const cert = new X509Certificate(certPem);
  const aki = cert.getExtension(AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) {
    throw new SidecarError(
      'CHAIN_INVALID',
      'the certificate has no Authority Key Identifier keyIdentifier, so it has no ARI CertID',
    );
  }
  return `${hexToBase64url(aki.keyId)}.${hexToBase64url(serialContentHex(cert.serialNumber))}`;
}

/**
 * The DER INTEGER content bytes of a serial given as hex without a sign
 * byte (as @peculiar/x509 gives it): DER encodes a positive integer in the
 * fewest bytes, with one leading 00 exactly when the high bit of the first
 * byte is set (X.690 section 8.3.2).
 */
export function serialContentHex(serialHex: string): string {
  let hex = serialHex.toLowerCase().replace(/^(00)+(?=.)/, '');
  if (hex.length % 2) hex = `0${hex}`;
  return parseInt(hex.slice(0, 2), 16) >= 0x80 ? `00${hex}` : hex;
}

function hexToBase64url(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64url');
}
