import { getDomain } from 'tldts';

/**
 * Where a rate limit applies: the scopes (`account:`, `domain:`, `hostname:`,
 * `set:`) that lifecycle/rate-limits.ts counts against and that a CA's
 * `rateLimited` problem blocks, and the hostname normalization both use.
 * Pure.
 */

export interface OrderRequest {
  readonly account: string;
  readonly domains: readonly string[];
}

/**
 * The registered domain of a hostname, as Let's Encrypt computes it: from the
 * Public Suffix List (the `tldts` package bundles it), private section
 * included, so `x.github.io` is its own registered domain, like
 * `example.co.uk`. A name the PSL knows no registrable part of (a public
 * suffix itself such as `github.io`, `localhost`, an IP address, a name that
 * does not parse) is its own registered domain: the narrowest guess, and the
 * one Let's Encrypt makes for an IPv4 address (it groups IPv6 by /64, which
 * this does not). Names under an unlisted TLD (`demo.test`) follow the PSL's
 * default `*` rule: the last label is the suffix.
 */
export function registeredDomain(hostname: string): string {
  const h = normalizeHostname(hostname);
  return getDomain(h, { allowPrivateDomains: true }) ?? h;
}

/** The scopes a `Block` can name that would stop this order. */
export function scopesFor(request: OrderRequest): string[] {
  const domains = normalizeDomains(request.domains);
  return [
    `account:${request.account}`,
    ...unique(domains.map(registeredDomain)).map((r) => `domain:${r}`),
    ...domains.map((h) => `hostname:${h}`),
    setScope(domains),
  ];
}

/**
 * The scope of a Let's Encrypt `rateLimited` problem, from its detail text.
 * Boulder's messages (ratelimits/limiter.go, and the older wording):
 *
 * - "too many certificates (5) already issued for this exact set of
 *   identifiers in the last 168h0m0s, retry after ..." ("... of domains ..."
 *   before 2025) -> `set:<this order's hostnames>`
 * - "too many certificates (50) already issued for \"example.com\" in the
 *   last 168h0m0s, ..." (before: "too many certificates already issued for:
 *   example.com") -> `domain:<registered domain>`
 * - "too many failed authorizations (5) for \"a.example.com\" in the last
 *   1h0m0s, ..." (before: "too many failed authorizations recently") ->
 *   `hostname:<h>`; when the text names no hostname of the order and it has
 *   several, `set:<hostnames>`: one of them failed, and blocking the set
 *   stops this order without stopping other certificates
 * - "too many new orders (300) from this account ..." (before: "too many new
 *   orders recently") and anything unrecognized -> `account:<acct>`
 */
export function scopeForProblem(detail: string, request: OrderRequest): string {
  const text = detail.toLowerCase();
  const domains = normalizeDomains(request.domains);
  const account = `account:${request.account}`;
  if (domains.length === 0) return account;

  if (/already issued for (this )?exact set/.test(text)) return setScope(domains);

  if (/too many certificates.*already issued/.test(text)) {
    const regs = unique(domains.map(registeredDomain));
    const named = quoted(text).map(registeredDomain);
    const reg =
      regs.find((r) => named.includes(r)) ??
      longestFirst(regs).find((r) => mentions(text, r)) ??
      (regs.length === 1 ? regs[0] : undefined);
    return reg !== undefined ? `domain:${reg}` : account;
  }

  if (/too many failed authorizations/.test(text)) {
    const named = quoted(text).map(normalizeHostname);
    const h =
      domains.find((d) => named.includes(d)) ??
      longestFirst(domains).find((d) => mentions(text, d)) ??
      (domains.length === 1 ? domains[0] : undefined);
    return h !== undefined ? `hostname:${h}` : setScope(domains);
  }

  return account;
}

/** A scope in words, for the messages operators read. */
export function describeScope(scope: string): string {
  const i = scope.indexOf(':');
  const kind = scope.slice(0, i);
  const value = scope.slice(i + 1);
  switch (kind) {
    case 'account':
      return `account ${value}`;
    case 'domain':
      return `the registered domain ${value}`;
    case 'hostname':
      return `the hostname ${value}`;
    case 'set':
      return `exactly the hostnames ${value.split(',').join(', ')}`;
    default:
      return scope;
  }
}

export function normalizeHostname(h: string): string {
  return h.trim().toLowerCase().replace(/\.$/, '');
}

export function normalizeDomains(domains: readonly string[]): string[] {
  return unique(domains.map(normalizeHostname).filter(Boolean)).sort();
}

export function setScope(sortedDomains: readonly string[]): string {
  return `set:${sortedDomains.join(',')}`;
}

export function unique<T>(xs: readonly T[]): T[] {
  return [...new Set(xs)];
}

function longestFirst(xs: readonly string[]): string[] {
  return [...xs].sort((a, b) => b.length - a.length);
}

/** Strings in double quotes (Boulder formats the counted name with %q). */
function quoted(text: string): string[] {
  return [...text.matchAll(/"([^"\s]+)"/g)].map((m) => m[1] ?? '');
}

/** Whether `name` appears in `text` as a whole hostname, not inside a longer one. */
function mentions(text: string, name: string): boolean {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^a-z0-9.-])${escaped}($|[^a-z0-9-]|\\.($|[^a-z0-9-]))`).test(text);
}
