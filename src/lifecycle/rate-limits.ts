import { LOST_LEDGER_REASON, type Ledger } from './rate-limit-ledger.js';
import {
  describeScope,
  normalizeDomains,
  registeredDomain,
  scopesFor,
  setScope,
  unique,
  type OrderRequest,
} from './rate-limit-scopes.js';

export {
  DEFAULT_BLOCK_SECONDS,
  emptyLedger,
  lostLedger,
  LOST_LEDGER_REASON,
  parseLedger,
  prune,
  record,
  recordRateLimited,
  type Block,
  type Ledger,
  type LedgerEvent,
} from './rate-limit-ledger.js';
export {
  registeredDomain,
  scopeForProblem,
  scopesFor,
  type OrderRequest,
} from './rate-limit-scopes.js';

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
        b.reason === LOST_LEDGER_REASON
          ? `${b.reason} (a local-state problem, STORE_CORRUPT) for ${describeScope(b.scope)}; next possible at ${at}`
          : `the CA refused an order for ${describeScope(b.scope)} as rate limited (${b.reason}) and asked us to wait; next possible at ${at}`,
    });
  }

  const events = ledger.events.map((e) => ({ ...e, t: Date.parse(e.at) }));
  const within = (l: Limit) => (e: { t: number }) => e.t > t - l.windowMs;
  /** Refuses when `counted` fills `limit`; `what` says it in words: "3 new orders were created by ...". */
  const consider = (
    limit: keyof RateLimits,
    scope: string,
    counted: readonly { t: number }[],
    what: (n: number) => string,
  ) => {
    const l = limits[limit];
    const r = overBudget(counted, l, t);
    if (r === undefined) return;
    refusals.push({
      limit,
      scope,
      retryAt: r,
      say: (at) =>
        `${what(counted.length)} in the last ${describeWindow(l.windowMs)} (the limit is ${l.limit}); next possible at ${at}`,
    });
  };

  const orders = events
    .filter((e) => e.kind === 'order' && e.account === request.account)
    .filter(within(limits.newOrdersPerAccount));
  consider(
    'newOrdersPerAccount',
    `account:${request.account}`,
    orders,
    (n) =>
      `${n} new ${plural(n, 'order was', 'orders were')} created by account ${request.account}`,
  );

  const issued = events.filter((e) => e.kind === 'issued');
  const perDomain = issued.filter(within(limits.certificatesPerRegisteredDomain));
  for (const reg of unique(domains.map(registeredDomain))) {
    // A certificate with several names under one registered domain counts once.
    const counted = perDomain.filter((e) => e.domains.some((h) => registeredDomain(h) === reg));
    consider(
      'certificatesPerRegisteredDomain',
      `domain:${reg}`,
      counted,
      (n) =>
        `${n} ${plural(n, 'certificate', 'certificates')} for the registered domain ${reg} ${plural(n, 'was', 'were')} issued`,
    );
  }

  const key = domains.join(',');
  consider(
    'duplicateCertificates',
    setScope(domains),
    issued.filter(within(limits.duplicateCertificates)).filter((e) => e.domains.join(',') === key),
    (n) =>
      `${n} ${plural(n, 'certificate', 'certificates')} for exactly these hostnames (${domains.join(', ')}) ${plural(n, 'was', 'were')} issued`,
  );

  const failed = events
    .filter((e) => e.kind === 'failedValidation' && e.account === request.account)
    .filter(within(limits.failedValidationsPerHostname));
  for (const h of domains) {
    consider(
      'failedValidationsPerHostname',
      `hostname:${h}`,
      failed.filter((e) => e.domains.includes(h)),
      (n) =>
        `${n} ${plural(n, 'validation', 'validations')} of ${h} by account ${request.account} failed`,
    );
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
