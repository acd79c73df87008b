/**
 * ACME Renewal Information (RFC 9773) decisions: pure, with the clock and
 * the randomness passed in. The HTTP fetch lives in acme/; what a pass does
 * with the answer lives in the reconciler.
 */

/** What the CA suggested for one certificate (RFC 9773 section 4.2). */
export interface RenewalInfo {
  readonly window: { readonly start: Date; readonly end: Date };
  /** A page for a person explaining the window (e.g. a mass revocation). */
  readonly explanationUrl?: string;
}

export type ParsedRenewalInfo =
  | { readonly ok: true; readonly info: RenewalInfo }
  | { readonly ok: false; readonly problem: string };

/**
 * Reads a renewalInfo body. Anything malformed is a problem (the caller
 * falls back to the lifetime rule and warns once), never a throw: the body
 * comes from the network, and a CA may be overridden to answer anything.
 */
export function parseRenewalInfo(body: unknown): ParsedRenewalInfo {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, problem: 'the answer is not a JSON object' };
  }
  const { suggestedWindow, explanationURL } = body as Record<string, unknown>;
  if (typeof suggestedWindow !== 'object' || suggestedWindow === null) {
    return { ok: false, problem: 'the answer has no suggestedWindow object' };
  }
  const { start, end } = suggestedWindow as Record<string, unknown>;
  const s = typeof start === 'string' ? new Date(start) : undefined;
  const e = typeof end === 'string' ? new Date(end) : undefined;
  if (!s || Number.isNaN(s.getTime())) {
    return { ok: false, problem: 'suggestedWindow.start is not an RFC 3339 time' };
  }
  if (!e || Number.isNaN(e.getTime())) {
    return { ok: false, problem: 'suggestedWindow.end is not an RFC 3339 time' };
  }
  // Section 4.2: "the end of the window MUST be after the start".
  if (e.getTime() <= s.getTime()) {
    return { ok: false, problem: 'suggestedWindow.end is not after its start' };
  }
  const url =
    typeof explanationURL === 'string' && isHttpUrl(explanationURL) ? explanationURL : undefined;
  return { ok: true, info: { window: { start: s, end: e }, ...(url && { explanationUrl: url }) } };
}

/** Longest explanationURL kept: it is stored, logged and shown. */
const MAX_EXPLANATION_URL = 2048;

/**
 * An http(s) URL written in printable ASCII: the string is shown as the CA
 * sent it (log, `/status`, the page, `acme-sidecar once`), so no control
 * character or space may reach a terminal from the network.
 */
function isHttpUrl(v: string): boolean {
  if (v.length > MAX_EXPLANATION_URL || !/^[\x21-\x7e]+$/.test(v)) return false;
  try {
    const u = new URL(v);
    return u.protocol === 'https:' || u.protocol === 'http:';
  } catch {
    return false;
  }
}

/** Poll no more often than every minute, and no less than every 6 hours. */
export const ARI_RETRY_AFTER_MIN_S = 60;
export const ARI_RETRY_AFTER_MAX_S = 6 * 3600;

/**
 * When to ask the CA again (section 4.3): its Retry-After, clamped to
 * [1 min, 6 h]; 6 h when it sent none or nonsense.
 */
export function ariRecheckSeconds(retryAfterS: number | undefined): number {
  if (retryAfterS === undefined || !Number.isFinite(retryAfterS)) return ARI_RETRY_AFTER_MAX_S;
  return Math.min(ARI_RETRY_AFTER_MAX_S, Math.max(ARI_RETRY_AFTER_MIN_S, Math.round(retryAfterS)));
}

/**
 * A uniformly random time in the suggested window (section 4.2), kept far
 * enough from notAfter for the renewal to finish: never later than five
 * sixths of the lifetime. Pebble's window for a short lifetime runs up to
 * (2.7: past) notAfter, and a renewal drawn at the last second would let
 * the certificate expire while it is ordered. A window that ends before
 * that margin is used as it is; one that starts after it collapses to the
 * latest safe time. A window in the past yields a time in the past: renew
 * at the next pass.
 */
export function chooseRenewalTime(
  window: RenewalInfo['window'],
  cert: { readonly notBefore: Date; readonly notAfter: Date },
  random: () => number,
): Date {
  const lifetime = cert.notAfter.getTime() - cert.notBefore.getTime();
  const latestSafe = cert.notAfter.getTime() - Math.max(0, lifetime) / 6;
  const start = window.start.getTime();
  const end = Math.min(window.end.getTime(), latestSafe);
  if (end <= start) return new Date(Math.min(start, latestSafe));
  return new Date(start + Math.floor(random() * (end - start)));
}

/**
 * Is a stored choice still the one to keep? A time drawn from a window is
 * not re-drawn on every pass; a new window from the CA re-draws it.
 */
export function sameWindow(
  a: RenewalInfo['window'] | undefined,
  b: RenewalInfo['window'],
): boolean {
  return !!a && a.start.getTime() === b.start.getTime() && a.end.getTime() === b.end.getTime();
}

/** What the CA said when asked for one certificate's renewalInfo (acme/ fetches it). */
export type RenewalInfoAnswer =
  /** ARI is off, or the CA's directory has no `renewalInfo`. */
  | { readonly kind: 'unsupported' }
  | { readonly kind: 'info'; readonly info: RenewalInfo; readonly retryAfterS?: number }
  /** No usable answer: an error status, a malformed body, no answer at all. */
  | { readonly kind: 'problem'; readonly problem: string; readonly retryAfterS?: number };

/**
 * What is kept beside a stored certificate (one serial from one CA): the
 * window the CA suggested, the time drawn in it, and when to ask again.
 * ISO 8601 times throughout.
 */
export interface AriRecord {
  readonly serial: string;
  readonly directoryUrl: string;
  readonly checkedAt: string;
  /** Not before this does the daemon ask again (Retry-After, clamped). */
  readonly nextCheck: string;
  readonly window?: { readonly start: string; readonly end: string };
  /** Drawn once per window. */
  readonly renewAt?: string;
  readonly explanationUrl?: string;
  /** Why the last answer was not used; the lifetime rule applies meanwhile. */
  readonly problem?: string;
}

/** The certificate an ARI record speaks for. */
export interface AriSubject {
  readonly serial: string;
  readonly directoryUrl: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/**
 * Must the CA be asked now? Yes when nothing is known for this very
 * certificate, or its Retry-After has passed. (`acme-sidecar once` asks
 * regardless: the reconciler asks afresh the first time a process sees a
 * certificate.)
 */
export function ariCheckDue(
  prev: AriRecord | undefined,
  cert: Pick<AriSubject, 'serial' | 'directoryUrl'>,
  now: Date,
): boolean {
  if (!prev || prev.serial !== cert.serial || prev.directoryUrl !== cert.directoryUrl) return true;
  const next = Date.parse(prev.nextCheck);
  return !Number.isFinite(next) || now.getTime() >= next;
}

/**
 * A certificate this process has just issued is not asked about at once:
 * its renewal is far off, the lifetime rule covers it meanwhile (RFC 9773
 * section 4.3 asks clients to check periodically, not at issuance), and the
 * GET would be one more request per order. certmagic does the same: its
 * obtainCert stores a new certificate without an ARI fetch; updateARI runs
 * only from the maintenance loop (RenewManagedCertificates, every
 * RenewCheckInterval) and for a certificate already in storage (manageOne),
 * both behind `NeedsRefresh()`.
 *
 * The first check comes a tenth of the lifetime after issuance, at most the
 * Retry-After clamp (6 h): a 90-day or a 6-day certificate is asked 6 h
 * after it was issued, a 2-minute one after 12 s, well before the lifetime
 * rule (a half or a third of the lifetime left) and before any window a CA
 * suggests for it is likely to open. The daemon wakes for that time
 * (`ariCheckAt`), so the bound holds without a regular pass.
 */
export const ARI_FIRST_CHECK_FRACTION = 1 / 10;

/** When a certificate issued at `issuedAt` by this process is first asked about. */
export function ariFirstCheckAt(
  cert: Pick<AriSubject, 'notBefore' | 'notAfter'>,
  issuedAt: Date,
): Date {
  const lifetime = Math.max(0, cert.notAfter.getTime() - cert.notBefore.getTime());
  const delay = Math.min(ARI_RETRY_AFTER_MAX_S * 1000, lifetime * ARI_FIRST_CHECK_FRACTION);
  return new Date(issuedAt.getTime() + delay);
}

/** Whether to ask now, or else until when not. */
export type AriCheck = { readonly due: true } | { readonly due: false; readonly nextCheck: Date };

/**
 * Must the CA be asked about this certificate in this pass? What this
 * process knows of it: `asked`, it asked already; `issuedAt`, it issued it
 * (and has not asked yet).
 * - issued here, not asked yet: at ariFirstCheckAt, not before;
 * - not asked in this process otherwise: now (`acme-sidecar once` and a
 *   restarted daemon ask afresh: that is how ARI reaches cron users);
 * - asked before: when its Retry-After has passed (ariCheckDue).
 */
export function ariCheck(
  prev: AriRecord | undefined,
  cert: AriSubject,
  seen: { readonly asked: boolean; readonly issuedAt?: Date },
  now: Date,
): AriCheck {
  if (!seen.asked) {
    if (!seen.issuedAt) return { due: true };
    const first = ariFirstCheckAt(cert, seen.issuedAt);
    return now.getTime() >= first.getTime() ? { due: true } : { due: false, nextCheck: first };
  }
  if (ariCheckDue(prev, cert, now) || !prev) return { due: true };
  return { due: false, nextCheck: new Date(prev.nextCheck) };
}

export interface AriUpdate {
  readonly record: AriRecord;
  /** `drawn`: a new window, a new time; `kept`: the same window as before. */
  readonly choice?: 'drawn' | 'kept';
  /** Set once per problem: a repeat of the same problem for the same certificate is not warned again. */
  readonly warning?: string;
}

/**
 * The record after an answer. A time drawn from a window is kept while the
 * CA suggests the same window (section 4.2: not re-rolled on every poll); a
 * new window draws again. A problem drops the window: the lifetime rule
 * decides until a usable answer comes.
 */
export function nextAriRecord(
  prev: AriRecord | undefined,
  cert: AriSubject,
  answer: Exclude<RenewalInfoAnswer, { kind: 'unsupported' }>,
  now: Date,
  random: () => number,
): AriUpdate {
  const same = prev?.serial === cert.serial && prev.directoryUrl === cert.directoryUrl;
  const base = {
    serial: cert.serial,
    directoryUrl: cert.directoryUrl,
    checkedAt: now.toISOString(),
    nextCheck: new Date(now.getTime() + ariRecheckSeconds(answer.retryAfterS) * 1000).toISOString(),
  };
  if (answer.kind === 'problem') {
    const repeated = same && prev.problem === answer.problem;
    return {
      record: { ...base, problem: answer.problem },
      ...(!repeated && { warning: answer.problem }),
    };
  }
  const { window, explanationUrl } = answer.info;
  const prevWindow =
    same && prev.window && prev.renewAt
      ? { start: new Date(prev.window.start), end: new Date(prev.window.end) }
      : undefined;
  const kept = prevWindow && sameWindow(prevWindow, window) ? prev?.renewAt : undefined;
  const renewAt = kept ?? chooseRenewalTime(window, cert, random).toISOString();
  return {
    record: {
      ...base,
      window: { start: window.start.toISOString(), end: window.end.toISOString() },
      renewAt,
      ...(explanationUrl && { explanationUrl }),
    },
    choice: kept ? 'kept' : 'drawn',
  };
}

/** Where a renewal time came from, as logs, `/status` and metrics say it. */
export type RenewalSource = 'ari' | 'lifetime';

/** The ARI time a record holds for exactly this certificate, if any. */
export function ariRenewAt(
  record: AriRecord | undefined,
  cert: Pick<AriSubject, 'serial' | 'directoryUrl'>,
): Date | undefined {
  if (!record?.renewAt || record.serial !== cert.serial) return undefined;
  if (record.directoryUrl !== cert.directoryUrl) return undefined;
  const at = new Date(record.renewAt);
  return Number.isNaN(at.getTime()) ? undefined : at;
}

/**
 * Is a renewal now due by the CA's own window, so that Let's Encrypt
 * exempts its order (with `replaces`) from rate limits and the budget must
 * not hold it back? Yes when the time drawn for exactly this certificate has
 * passed and the window itself has opened. A time drawn before the window
 * (chooseRenewalTime pulls it back to five sixths of the lifetime when the
 * window starts later) is our margin, not the CA's word: renewing then is
 * an ordinary order.
 */
export function dueByAriWindow(
  record: AriRecord | undefined,
  cert: Pick<AriSubject, 'serial' | 'directoryUrl'>,
  now: Date,
): boolean {
  const at = ariRenewAt(record, cert);
  if (!at || now.getTime() < at.getTime()) return false;
  const start = record?.window ? Date.parse(record.window.start) : NaN;
  return Number.isFinite(start) && now.getTime() >= start;
}
