/**
 * ALLOWED_DOMAINS: which hostnames any source (DOMAINS, DOMAINS_FILE,
 * Rancher and Docker labels) may ask a certificate for. Pure.
 *
 * An entry allows itself and every name under it, on label boundaries:
 * `example.com` allows `example.com` and `shop.example.com`, never
 * `badexample.com`. Case and one trailing dot are ignored on both sides.
 * An empty list allows everything (the behaviour before the setting).
 *
 * Kept to one small function on normalized strings: each hostname kind
 * (a wildcard `*.example.com`, an IP address) has its case in `allowedBy`.
 */
import { isIpAddress } from './ip-address.js';

/** Lowercase, without one trailing dot. */
function canonical(name: string): string {
  const lower = name.trim().toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** The list as written (comma-separated), canonical, without empty items. */
export function parseAllowedDomains(raw: string): string[] {
  return [
    ...new Set(
      raw
        .split(',')
        .map(canonical)
        .filter((d) => d !== ''),
    ),
  ];
}

/**
 * The entry of `allowed` that allows `hostname`, if one does. A wildcard
 * `*.example.com` is under `example.com` like any name there; an IP address
 * (RFC 8738) is allowed only by an entry that is that address.
 */
export function allowedBy(hostname: string, allowed: readonly string[]): string | undefined {
  const host = canonical(hostname);
  const exactOnly = isIpAddress(host);
  return allowed.find((entry) => {
    const e = canonical(entry);
    return e !== '' && (host === e || (!exactOnly && host.endsWith(`.${e}`)));
  });
}

/** True when `allowed` is empty (no restriction) or an entry allows `hostname`. */
export function isAllowedHostname(hostname: string, allowed: readonly string[]): boolean {
  return allowed.length === 0 || allowedBy(hostname, allowed) !== undefined;
}

/** The hostnames of `domains` that `allowed` does not allow, in order. */
export function disallowedHostnames(
  domains: readonly string[],
  allowed: readonly string[],
): string[] {
  return domains.filter((d) => !isAllowedHostname(d, allowed));
}
