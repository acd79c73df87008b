import type { RateLimits } from './rate-limits.js';
import { normalizeDomains } from './rate-limit-scopes.js';

/**
 * The ledger of what the CA has counted against us (orders, certificates,
 * failed validations) and the blocks its `rateLimited` answers set: how it
 * grows, shrinks and is read back from the store. Pure: the caller passes
 * `now` and persists what these return.
 */

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

/** Blocks from a `rateLimited` problem that came without a usable Retry-After last this long. */
export const DEFAULT_BLOCK_SECONDS = 3600;

export function emptyLedger(): Ledger {
  return { events: [], blocks: [] };
}

/** The reason a lost ledger's block gives; checkBudget words its refusal by it. */
export const LOST_LEDGER_REASON =
  'the rate-limit ledger was corrupt; its budget is counted as spent';

/**
 * The safe default for a ledger that was corrupt: its budget counts as
 * spent for the current window, not as empty. What it held is unknown, so
 * the account is blocked until the longest window has passed since the
 * loss was found (every limit is then sure to have room again). ARI
 * renewals, exempt from the CA's limits, still go through.
 */
export function lostLedger(account: string, windowsMs: readonly number[], now: Date): Ledger {
  const longest = Math.max(0, ...windowsMs.filter((w) => Number.isFinite(w)));
  return {
    events: [],
    blocks: [
      {
        scope: `account:${account}`,
        until: new Date(now.getTime() + longest).toISOString(),
        reason: LOST_LEDGER_REASON,
      },
    ],
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
