import { getDomain } from 'tldts';

/**
 * The CA's rate limits as a budget we keep ourselves, so the sidecar refuses
 * an order that the CA would refuse anyway (and that would only spend more of
 * the budget, or earn a longer wait), and can say when it will be possible.
 *
 * Pure: no I/O and no clock of its own. The caller loads the ledger, passes
 * `now`, and persists what `record`, `recordRateLimited` and `prune` return.
 *
 * One ledger per CA directory: every limit here is counted by one CA, and a
 * staging certificate spends nothing of the production budget.
 *
 * Counting model: a sliding window (an event counts while `now - at <
 * windowMs`). Let's Encrypt has used token buckets since 2025, which refill
 * gradually (one certificate per registered domain every ~202 minutes); a
 * sliding window with the same burst and period never allows more than the
 * bucket does, so we may wait longer than Let's Encrypt requires, but never
 * start an order it would refuse for a reason recorded here.
 */

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export interface Limit {
  /** Events allowed inside one window; must be at least 1. `Infinity` turns the check off. */
  readonly limit: number;
  readonly windowMs: number;
}

export interface RateLimits {
  /** Certificates issued for one registered domain (any account of this CA). */
  readonly certificatesPerRegisteredDomain: Limit;
  /** Certificates issued for exactly the same hostname set (any account of this CA). */
  readonly duplicateCertificates: Limit;
  /** Failed validations of one hostname by one account. */
  readonly failedValidationsPerHostname: Limit;
  /** Orders created by one account. */
  readonly newOrdersPerAccount: Limit;
}

/**
 * Let's Encrypt production, as published at https://letsencrypt.org/docs/rate-limits/
 * (checked against the 2025 page): 50 new certificates per registered domain
 * per 7 days, 5 per exact set of identifiers per 7 days, 5 authorization
 * failures per identifier per account per hour, 300 new orders per account
 * per 3 hours. These match the numbers.
 */
export const LETSENCRYPT_PRODUCTION_LIMITS: RateLimits = {
  certificatesPerRegisteredDomain: { limit: 50, windowMs: 7 * DAY },
  duplicateCertificates: { limit: 5, windowMs: 7 * DAY },
  failedValidationsPerHostname: { limit: 5, windowMs: HOUR },
  newOrdersPerAccount: { limit: 300, windowMs: 3 * HOUR },
};

/**
 * Let's Encrypt staging, approximate: https://letsencrypt.org/docs/staging-environment/
 * gave 30,000 certificates per registered domain and 30,000 duplicates per
 * week and 1,500 new orders per 3 hours for years; its failed-validation
 * limit read 60 per hour until the 2025 rewrite, which raised it (to 200 per
 * hour, the value used here). Only the order of magnitude matters: staging
 * exists so that these are rarely reached.
 */
export const LETSENCRYPT_STAGING_LIMITS: RateLimits = {
  certificatesPerRegisteredDomain: { limit: 30_000, windowMs: 7 * DAY },
  duplicateCertificates: { limit: 30_000, windowMs: 7 * DAY },
  failedValidationsPerHostname: { limit: 200, windowMs: HOUR },
  newOrdersPerAccount: { limit: 1_500, windowMs: 3 * HOUR },
};

/** What the CA has counted against us. Serializable as JSON as it is. */
export interface LedgerEvent {
  /** ISO 8601 instant. */
  readonly at: string;
  /**
   * `order`: a new order was sent to the CA (recorded before the request, so
   * an order whose answer is lost still counts). `issued`: a certificate was
   * downloaded. `failedValidation`: the CA marked an authorization invalid;
   * `domains` then holds the hostname(s) that failed.
   */
  readonly kind: 'order' | 'issued' | 'failedValidation';
  /** The ACME account: its URL, or the directory URL when there is one account per CA. */
  readonly account: string;
  /** The hostname set, lowercased and sorted (`record` normalizes it). */
  readonly domains: readonly string[];
}

/** The CA said `rateLimited` for this scope: no order for it until `until`. */
export interface Block {
  /** `account:<acct>`, `domain:<registered domain>`, `hostname:<h>` or `set:<h1,h2,...>`. */
  readonly scope: string;
  /** ISO 8601 instant. */
  readonly until: string;
  /** The CA's problem detail, for operators. */
  readonly reason: string;
}

export interface Ledger {
  readonly events: readonly LedgerEvent[];
  readonly blocks: readonly Block[];
}

export interface OrderRequest {
  readonly account: string;
  readonly domains: readonly string[];
}

export type BudgetDecision =
  | { ok: true }
  | {
      ok: false;
      limit: keyof RateLimits | 'blocked';
      scope: string;
      /** The earliest time at which this order is within every budget again. */
      retryAt: Date;
      message: string;
    };

/** Blocks from a `rateLimited` problem that came without a usable Retry-After last this long. */
export const DEFAULT_BLOCK_SECONDS = 3600;

export function emptyLedger(): Ledger {
  return { events: [], blocks: [] };
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
 * Would starting an order for `request` now exceed a budget? When more than
 * one would, the answer names the one that lifts last, so `retryAt` is when
 * the order is possible (assuming nothing else is spent meanwhile).
 *
 * Simplification: every issued certificate counts against its registered
 * domains. Let's Encrypt exempts renewals (the same hostname set as an
 * earlier certificate) from that limit; counting them only makes us stricter,
 * and matters only near 50 certificates a week for one registered domain.
 */
export function checkBudget(
  ledger: Ledger,
  request: OrderRequest,
  limits: RateLimits,
  now: Date,
): BudgetDecision {
  const domains = normalizeDomains(request.domains);
  const t = now.getTime();
  const refusals: Refusal[] = [];

  const scopes = new Set(scopesFor({ account: request.account, domains }));
  for (const b of ledger.blocks) {
    const until = Date.parse(b.until);
    if (!scopes.has(b.scope) || !(until > t)) continue;
    refusals.push({
      limit: 'blocked',
      scope: b.scope,
      retryAt: until,
      say: (at) =>
        `the CA refused an order for ${describeScope(b.scope)} as rate limited (${b.reason}) and asked us to wait; next possible at ${at}`,
    });
  }

  const events = ledger.events.map((e) => ({ ...e, t: Date.parse(e.at) }));
  const within = (l: Limit) => (e: { t: number }) => e.t > t - l.windowMs;

  {
    const l = limits.newOrdersPerAccount;
    const counted = events
      .filter((e) => e.kind === 'order' && e.account === request.account)
      .filter(within(l));
    const r = overBudget(counted, l, t);
    if (r !== undefined) {
      refusals.push({
        limit: 'newOrdersPerAccount',
        scope: `account:${request.account}`,
        retryAt: r,
        say: (at) =>
          `${counted.length} new ${plural(counted.length, 'order was', 'orders were')} created by account ${request.account} in the last ${describeWindow(l.windowMs)} (the limit is ${l.limit}); next possible at ${at}`,
      });
    }
  }

  const issued = events.filter((e) => e.kind === 'issued');
  {
    const l = limits.certificatesPerRegisteredDomain;
    const recent = issued.filter(within(l));
    for (const reg of unique(domains.map(registeredDomain))) {
      // A certificate with several names under one registered domain counts once.
      const counted = recent.filter((e) => e.domains.some((h) => registeredDomain(h) === reg));
      const r = overBudget(counted, l, t);
      if (r === undefined) continue;
      refusals.push({
        limit: 'certificatesPerRegisteredDomain',
        scope: `domain:${reg}`,
        retryAt: r,
        say: (at) =>
          `${counted.length} ${plural(counted.length, 'certificate', 'certificates')} for the registered domain ${reg} ${plural(counted.length, 'was', 'were')} issued in the last ${describeWindow(l.windowMs)} (the limit is ${l.limit}); next possible at ${at}`,
      });
    }
  }

  {
    const l = limits.duplicateCertificates;
    const key = domains.join(',');
    const counted = issued.filter(within(l)).filter((e) => e.domains.join(',') === key);
    const r = overBudget(counted, l, t);
    if (r !== undefined) {
      refusals.push({
        limit: 'duplicateCertificates',
        scope: setScope(domains),
        retryAt: r,
        say: (at) =>
          `${counted.length} ${plural(counted.length, 'certificate', 'certificates')} for exactly these hostnames (${domains.join(', ')}) ${plural(counted.length, 'was', 'were')} issued in the last ${describeWindow(l.windowMs)} (the limit is ${l.limit}); next possible at ${at}`,
      });
    }
  }

  {
    const l = limits.failedValidationsPerHostname;
    const recent = events
      .filter((e) => e.kind === 'failedValidation' && e.account === request.account)
      .filter(within(l));
    for (const h of domains) {
      const counted = recent.filter((e) => e.domains.includes(h));
      const r = overBudget(counted, l, t);
      if (r === undefined) continue;
      refusals.push({
        limit: 'failedValidationsPerHostname',
        scope: `hostname:${h}`,
        retryAt: r,
        say: (at) =>
          `${counted.length} ${plural(counted.length, 'validation', 'validations')} of ${h} by account ${request.account} failed in the last ${describeWindow(l.windowMs)} (the limit is ${l.limit}); next possible at ${at}`,
      });
    }
  }

  // The latest lift wins; on a tie, the first found (blocks, then the order above).
  let worst: Refusal | undefined;
  for (const r of refusals) if (!worst || r.retryAt > worst.retryAt) worst = r;
  if (!worst) return { ok: true };
  const retryAt = new Date(worst.retryAt);
  return {
    ok: false,
    limit: worst.limit,
    scope: worst.scope,
    retryAt,
    message: worst.say(retryAt.toISOString()),
  };
}

/** Adds one event (domains normalized); returns a new ledger. */
export function record(ledger: Ledger, event: LedgerEvent): Ledger {
  const at = new Date(event.at);
  if (Number.isNaN(at.getTime())) {
    throw new RangeError(`ledger event time ${JSON.stringify(event.at)} is not a date`);
  }
  const normalized: LedgerEvent = {
    at: at.toISOString(),
    kind: event.kind,
    account: event.account,
    domains: normalizeDomains(event.domains),
  };
  return { events: [...ledger.events, normalized], blocks: [...ledger.blocks] };
}

/**
 * The CA answered `rateLimited` (RFC 8555 §6.7) for `scope`: no order for
 * that scope until `now + retryAfterSeconds` (the Retry-After header,
 * RFC 8555 §6.6). Without a usable Retry-After, `DEFAULT_BLOCK_SECONDS`.
 * A block already held for the scope is kept if it lasts longer.
 */
export function recordRateLimited(
  ledger: Ledger,
  scope: string,
  retryAfterSeconds: number | undefined,
  now: Date,
  reason: string,
): Ledger {
  const seconds =
    retryAfterSeconds !== undefined && Number.isFinite(retryAfterSeconds) && retryAfterSeconds > 0
      ? retryAfterSeconds
      : DEFAULT_BLOCK_SECONDS;
  const until = now.getTime() + seconds * 1000;
  const existing = ledger.blocks.find((b) => b.scope === scope);
  if (existing && Date.parse(existing.until) >= until) {
    return { events: [...ledger.events], blocks: [...ledger.blocks] };
  }
  return {
    events: [...ledger.events],
    blocks: [
      ...ledger.blocks.filter((b) => b.scope !== scope),
      { scope, until: new Date(until).toISOString(), reason },
    ],
  };
}

/**
 * Drops what no check can count any more, so the persisted ledger stays
 * small: each kind of event is kept for the longest window that counts it
 * (orders 3 hours, issued certificates 7 days, failed validations 1 hour, by
 * default), and blocks that have expired.
 */
export function prune(ledger: Ledger, limits: RateLimits, now: Date): Ledger {
  const t = now.getTime();
  const keepFor: Record<LedgerEvent['kind'], number> = {
    order: limits.newOrdersPerAccount.windowMs,
    issued: Math.max(
      limits.certificatesPerRegisteredDomain.windowMs,
      limits.duplicateCertificates.windowMs,
    ),
    failedValidation: limits.failedValidationsPerHostname.windowMs,
  };
  return {
    events: ledger.events.filter((e) => Date.parse(e.at) > t - keepFor[e.kind]),
    blocks: ledger.blocks.filter((b) => Date.parse(b.until) > t),
  };
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

/**
 * Reads a persisted ledger, keeping every well-formed entry and dropping the
 * rest: a damaged file must cost a budget check, not the daemon.
 */
export function parseLedger(json: string | undefined): Ledger {
  if (!json) return emptyLedger();
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return emptyLedger();
  }
  const obj = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
  const isDate = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));
  const events: LedgerEvent[] = [];
  for (const e of list(obj.events)) {
    const r = (e ?? {}) as Record<string, unknown>;
    if (
      isDate(r.at) &&
      (r.kind === 'order' || r.kind === 'issued' || r.kind === 'failedValidation') &&
      typeof r.account === 'string' &&
      Array.isArray(r.domains) &&
      r.domains.every((d) => typeof d === 'string')
    ) {
      events.push({ at: r.at, kind: r.kind, account: r.account, domains: r.domains as string[] });
    }
  }
  const blocks: Block[] = [];
  for (const b of list(obj.blocks)) {
    const r = (b ?? {}) as Record<string, unknown>;
    if (typeof r.scope === 'string' && isDate(r.until) && typeof r.reason === 'string') {
      blocks.push({ scope: r.scope, until: r.until, reason: r.reason });
    }
  }
  return { events, blocks };
}

interface Refusal {
  limit: keyof RateLimits | 'blocked';
  scope: string;
  retryAt: number;
  say: (at: string) => string;
}

/**
 * When the budget allows one more event, or undefined if it does now.
 * With `count >= limit`, one more is allowed once `count - limit + 1` of the
 * counted events have aged out: the (count - limit)-th oldest sets the time.
 */
function overBudget(counted: readonly { t: number }[], l: Limit, now: number): number | undefined {
  if (counted.length < l.limit) return undefined;
  const times = counted.map((e) => e.t).sort((a, b) => a - b);
  const pivot = times[Math.max(0, times.length - l.limit)];
  // Only a limit below 1 leaves no event to wait for: a whole window, then ask again.
  return pivot === undefined ? now + l.windowMs : pivot + l.windowMs;
}

function normalizeHostname(h: string): string {
  return h.trim().toLowerCase().replace(/\.$/, '');
}

function normalizeDomains(domains: readonly string[]): string[] {
  return unique(domains.map(normalizeHostname).filter(Boolean)).sort();
}

function setScope(sortedDomains: readonly string[]): string {
  return `set:${sortedDomains.join(',')}`;
}

function unique<T>(xs: readonly T[]): T[] {
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

function describeScope(scope: string): string {
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

function describeWindow(ms: number): string {
  const unit = (n: number, one: string) => (n === 1 ? one : `${n} ${one}s`);
  if (ms % DAY === 0) return unit(ms / DAY, 'day');
  if (ms % HOUR === 0) return unit(ms / HOUR, 'hour');
  if (ms % MINUTE === 0) return unit(ms / MINUTE, 'minute');
  return unit(Math.ceil(ms / 1000), 'second');
}

function plural(n: number, one: string, many: string): string {
  return n === 1 ? one : many;
}
