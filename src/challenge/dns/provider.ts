/**
 * One DNS service that can add and remove TXT records: the part of DNS-01
 * that differs per DNS host (RFC 2136 servers, PowerDNS, a script). The
 * responder around it does the rest (names, values, propagation, leftovers).
 */
export interface DnsProvider {
  /** `rfc2136`, `pdns` or `exec`, for logs and /status. */
  readonly name: string;
  /**
   * Adds `value` to the TXT record set at `fqdn` (no trailing dot). Never
   * replaces the set: a wildcard and its apex put two values at one name at
   * once (RFC 8555 section 8.4). Adding a value already there is not an error.
   */
  addTxt(fqdn: string, value: string): Promise<void>;
  /** Removes this one value from the set; a value already gone is not an error. */
  removeTxt(fqdn: string, value: string): Promise<void>;
}

/** The record a challenge needs, as the responder asks a provider for it. */
export interface TxtRecord {
  readonly fqdn: string;
  readonly value: string;
}

/** TTL of the records we write: short, they live for one validation. */
export const CHALLENGE_TTL_SECONDS = 60;
