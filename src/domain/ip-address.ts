/**
 * IP-address identifiers (RFC 8738): which DOMAINS entries are IP literals,
 * their one written form, and the certificate name they get. Pure.
 *
 * - IPv4: dotted decimal exactly as `node:net` `isIP` accepts it (four
 *   octets, no leading zeros). `010.0.0.1` (octal to some parsers), `127.1`,
 *   `0x7f.0.0.1` and `2130706433` are refused rather than guessed at.
 * - IPv6: any form `isIP` accepts, written back in the RFC 5952 form (lower
 *   case, leading zeros dropped, the longest run of zero groups as `::`),
 *   the form RFC 8738 section 3 asks for and CAs echo in authorizations.
 *   Refused: a zone id (`fe80::1%eth0`: it names an interface of this
 *   machine, not an address a CA can reach), brackets (`[::1]` is URL
 *   syntax), an embedded IPv4 part (`::ffff:192.0.2.1`: certify the IPv4
 *   address itself) and the unspecified address (`::`, `0.0.0.0`).
 * - Certificate name: the address, with `:` replaced by `-` for IPv6
 *   (`2001:db8::1` -> `2001-db8--1`, `::1` -> `--1`), since the name becomes
 *   a directory under `live/`. Only names that map back to a canonical IPv6
 *   address may start with `-` ({@link isIpv6CertName}).
 */
import { isIP } from 'node:net';

export type IpLiteral =
  /** Not written as an IP address: validate it as a hostname. */
  | { readonly kind: 'not-ip' }
  | { readonly kind: 'ip'; readonly address: string; readonly family: 4 | 6 }
  /** Written as an IP address in a form we refuse; `why` completes "IP address <x> ...". */
  | { readonly kind: 'invalid'; readonly why: string };

/** RFC 5952 text of a valid IPv6 address (the WHATWG URL serializer implements it). */
function rfc5952(v6: string): string {
  return new URL(`http://[${v6}]/`).hostname.slice(1, -1);
}

/** Dotted decimal that `isIP` refused: leading zeros or an octet over 255. */
const DOTTED_QUAD = /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/;

/**
 * Classifies one trimmed DOMAINS item (no whitespace inside). An item that
 * is not an IP literal in any form is `not-ip`, for the hostname rules.
 */
export function parseIpLiteral(item: string): IpLiteral {
  const bracketed = /^\[(.*)\]\.?$/.exec(item)?.[1];
  if (bracketed !== undefined) {
    if (isIP(bracketed) === 0) return { kind: 'not-ip' };
    return { kind: 'invalid', why: `is in brackets (URL syntax); write it bare: ${bracketed}` };
  }
  const undotted = item.endsWith('.') ? item.slice(0, -1) : item;
  const zone = undotted.indexOf('%');
  if (zone > 0 && isIP(undotted.slice(0, zone)) === 6) {
    return {
      kind: 'invalid',
      why: 'has a zone id (after "%"): it names an interface of this machine, not an address a CA can reach',
    };
  }
  const family = isIP(undotted);
  if (family === 0) {
    if (DOTTED_QUAD.test(undotted)) {
      return {
        kind: 'invalid',
        why: 'is not a canonical IPv4 address: octets are decimal 0-255 without leading zeros',
      };
    }
    return { kind: 'not-ip' };
  }
  if (undotted !== item) {
    return { kind: 'invalid', why: `has a trailing dot; write it without: ${undotted}` };
  }
  if (family === 4) {
    if (undotted === '0.0.0.0') return { kind: 'invalid', why: 'is the unspecified address' };
    return { kind: 'ip', address: undotted, family: 4 };
  }
  if (undotted.includes('.')) {
    return {
      kind: 'invalid',
      why: 'embeds an IPv4 address: certify the IPv4 address itself, or write all of it in hex',
    };
  }
  const address = rfc5952(undotted);
  if (address === '::') return { kind: 'invalid', why: 'is the unspecified address' };
  return { kind: 'ip', address, family: 6 };
}

/** True for a value this module accepted as an IP address (an `ip` identifier). */
export function isIpAddress(value: string): boolean {
  return isIP(value) !== 0;
}

/** The identifier type of a validated DOMAINS value (RFC 8555 section 9.7.7, RFC 8738). */
export function identifierType(value: string): 'dns' | 'ip' {
  return isIpAddress(value) ? 'ip' : 'dns';
}

/** The certificate name of an address: itself, with `:` as `-` for IPv6. */
export function ipCertName(address: string): string {
  return address.replace(/:/g, '-');
}

/**
 * True when `name` is {@link ipCertName} of a canonical IPv6 address: only
 * hex digits and `-`, and it maps back to exactly one address. Such names
 * may start with `-` (`--1`), which the general name rule refuses.
 */
export function isIpv6CertName(name: string): boolean {
  if (!/^[0-9a-f-]{2,39}$/.test(name)) return false;
  const address = name.replace(/-/g, ':');
  return isIP(address) === 6 && rfc5952(address) === address;
}

/**
 * The text form of an IP subjectAltName as Node's X509Certificate prints it
 * (`IP Address:0:0:0:0:0:0:0:1`), written the way DOMAINS values are.
 */
export function canonicalSanAddress(text: string): string | undefined {
  const family = isIP(text);
  if (family === 4) return text;
  if (family === 6) return rfc5952(text);
  return undefined;
}
