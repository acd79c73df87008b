import type { AcmePhase, CertMeta, KeyType, Phase } from '../domain/types.js';
import type { RenewalSource } from './ari.js';
import { Reason } from './reasons.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * RENEW_BEFORE_DAYS never renews a certificate before half its lifetime has
 * passed: at most two certificates per lifetime whatever the setting, so a
 * value meant for 90-day certificates (say 30, or 5.9) does not renew a
 * 6-day one every day or every pass. Half is also the default rule under 10
 * days, so for short lifetimes the cap is exactly that rule.
 */
export const RENEW_BEFORE_MAX_FRACTION = 1 / 2;

/** How RENEW_BEFORE_DAYS applies to one certificate's lifetime. */
export interface RenewBefore {
  /** Renew this long before notAfter. */
  readonly ms: number;
  /**
   * `applied`: as set; `capped`: longer than half the lifetime, so half;
   * `beyond-lifetime`: at or above the whole lifetime (meant for another
   * certificate), so half, and it does not override the CA's ARI window.
   */
  readonly use: 'applied' | 'capped' | 'beyond-lifetime';
}

/** RENEW_BEFORE_DAYS against a lifetime (ms); undefined when it is not set. */
export function renewBeforeFor(
  lifetimeMs: number,
  renewBeforeDays: number | undefined,
): RenewBefore | undefined {
  if (renewBeforeDays === undefined) return undefined;
  const asked = renewBeforeDays * DAY_MS;
  const cap = Math.max(0, lifetimeMs) * RENEW_BEFORE_MAX_FRACTION;
  if (asked >= lifetimeMs) return { ms: cap, use: 'beyond-lifetime' };
  if (asked > cap) return { ms: cap, use: 'capped' };
  return { ms: asked, use: 'applied' };
}

/**
 * When a certificate should be renewed by the lifetime rule: when a third of
 * its lifetime is left (half for lifetimes under 10 days, so short-lived
 * certificates keep a margin), or `renewBeforeDays` before notAfter, capped
 * at half the lifetime (renewBeforeFor).
 */
export function renewalTime(notBefore: Date, notAfter: Date, renewBeforeDays?: number): Date {
  const lifetime = notAfter.getTime() - notBefore.getTime();
  const explicit = renewBeforeFor(lifetime, renewBeforeDays);
  if (explicit) return new Date(notAfter.getTime() - explicit.ms);
  const fraction = lifetime < 10 * DAY_MS ? 1 / 2 : 1 / 3;
  return new Date(notAfter.getTime() - lifetime * fraction);
}

/** A RENEW_BEFORE_DAYS that does not apply as set to one certificate. */
export interface RenewBeforeWarning {
  readonly message: string;
  /** The certificate's lifetime, in seconds. */
  readonly lifetimeS: number;
  readonly renewBeforeDays: number;
  /** How long before notAfter the lifetime rule renews instead, in seconds. */
  readonly usedS: number;
}

/**
 * What to warn about RENEW_BEFORE_DAYS for one certificate, or undefined
 * when it applies as set (or is not set). The caller warns once per
 * certificate (serial), not on every pass.
 */
export function renewBeforeWarning(
  meta: Pick<CertMeta, 'notBefore' | 'notAfter'>,
  renewBeforeDays: number | undefined,
): RenewBeforeWarning | undefined {
  const lifetime = Date.parse(meta.notAfter) - Date.parse(meta.notBefore);
  const rb = renewBeforeFor(lifetime, renewBeforeDays);
  if (!rb || rb.use === 'applied' || renewBeforeDays === undefined) return undefined;
  const seconds = (ms: number) => Math.round(ms / 1000);
  const message =
    rb.use === 'beyond-lifetime'
      ? 'RENEW_BEFORE_DAYS is at or above the certificate lifetime; renewing at half the lifetime instead (or in the CA renewal window)'
      : 'RENEW_BEFORE_DAYS is more than half the certificate lifetime; capped at half';
  return { message, lifetimeS: seconds(lifetime), renewBeforeDays, usedS: seconds(rb.ms) };
}

/** The first retry step, and the shortest the schedule ever waits. */
const RETRY_FIRST_STEP_MS = 60_000;

/**
 * Delay before retrying a certificate after `attempt` consecutive failures
 * (1-based): 1 min, 10 min, 100 min, then daily, as Let's Encrypt advises
 * for automated clients, with ±10 % jitter so replicas do not align.
 *
 * `untilExpiryMs`, the time left on the certificate being served: the
 * schedule never waits more than a third of it (but at least the first
 * step), so a certificate with little time left gets several tries before
 * it expires instead of sleeping through its end (a 6-day certificate
 * renewed at two days left would otherwise wait a whole day after its
 * fourth failure; the soak saw 300 s certificates expire in the 10-minute
 * step).
 *
 * A certificate already expired and still served is an outage: the wait
 * stays at the first step for as long as it lasts, where the cap above has
 * brought it by the time the certificate ran out (the plain schedule used
 * to start again there: the soak saw an expired certificate wait its
 * 10-minute step, and a day was next). What bounds the tries then is the
 * CA: its `Retry-After`, and the RATE_LIMITS budget (Let's Encrypt's 5
 * failed validations per name per hour) that refuses an order before it
 * is sent. Our own self-signed `placeholder` is no such outage (it is
 * replaced locally, and a name that never validated is most often not
 * pointed here yet): it keeps the plain schedule, as does an absent
 * certificate (`untilExpiryMs` undefined) and one whose expiry is not
 * known (NaN: an unreadable notAfter is not an outage we can tell).
 *
 * A `retryAfter` (seconds) from the CA wins when it is longer: the CA's
 * word comes before our deadline.
 */
export function retryDelayMs(
  attempt: number,
  random: () => number,
  retryAfterS?: number,
  untilExpiryMs?: number,
  placeholder = false,
): number {
  const steps = [RETRY_FIRST_STEP_MS, 600_000, 6_000_000];
  let base = steps[Math.max(0, attempt - 1)] ?? DAY_MS;
  if (untilExpiryMs !== undefined && !Number.isFinite(untilExpiryMs)) untilExpiryMs = undefined;
  if (untilExpiryMs !== undefined && untilExpiryMs > 0) {
    base = Math.min(base, Math.max(RETRY_FIRST_STEP_MS, untilExpiryMs / 3));
  } else if (untilExpiryMs !== undefined && !placeholder) {
    base = Math.min(base, RETRY_FIRST_STEP_MS);
  }
  const jittered = Math.round(base * (0.9 + 0.2 * random()));
  return Math.max(jittered, (retryAfterS ?? 0) * 1000);
}

/** Longest delay `setTimeout` takes (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * When the daemon should run an extra pass, in ms from `now`: for the
 * earliest retry or renewal time that comes before the next regular pass
 * (`untilNextPassMs` away); undefined when the regular pass comes first or
 * nothing waits. Times already past are left to the regular pass (a pass just
 * ran; waking at once for them could spin). One second past the time,
 * because a retry is allowed only once `now` has passed it.
 */
export function wakeupMs(
  times: readonly (string | undefined)[],
  now: Date,
  untilNextPassMs: number,
): number | undefined {
  const future = times
    .map((r) => (r === undefined ? NaN : Date.parse(r)))
    .filter((t) => Number.isFinite(t) && t > now.getTime());
  if (future.length === 0) return undefined;
  const delay = Math.min(...future) - now.getTime() + 1000;
  return delay < untilNextPassMs ? Math.min(delay, MAX_TIMER_MS) : undefined;
}

/** What the reconciler knows about one certificate, gathered before deciding. */
export interface CertFacts {
  readonly name: string;
  /** Sorted, validated hostnames wanted now. */
  readonly domains: readonly string[];
  readonly target: AcmePhase;
  readonly keyType: KeyType;
  /** The ACME profile wanted; undefined: none (the CA's default). */
  readonly profile?: string;
  readonly directories: Readonly<Record<AcmePhase, string>>;
  readonly renewBeforeDays?: number;
  /** Latest stored certificate of each CA phase. */
  readonly stored: Readonly<Partial<Record<AcmePhase, CertMeta>>>;
  /** What nginx serves now, if anything. */
  readonly live?: LiveFacts;
  /** Issue from the target CA now even if the certificate is valid. */
  readonly force?: boolean;
  /** Renewal times drawn from the CA's ARI windows, for the certificate of that serial. */
  readonly ari?: Readonly<Partial<Record<AcmePhase, AriChoice>>>;
}

export interface AriChoice {
  readonly serial: string;
  readonly renewAt: Date;
}

export interface LiveFacts {
  readonly serial: string;
  readonly notBefore?: string;
  readonly notAfter: string;
  /** Which stored certificate it is; 'foreign' if none of ours matches. */
  readonly phase: Phase | 'foreign';
  /**
   * Only for a 'foreign' certificate that holds together (key matches,
   * chain verifies) and that `from`'s CA is known to have issued (its
   * intermediate on record, or the CA itself said so): it can be adopted
   * back into the store instead of ordering again.
   */
  readonly adoptable?: {
    readonly from: AcmePhase;
    /** Sorted DNS names on it. */
    readonly domains: readonly string[];
    readonly keyType: KeyType | undefined;
  };
}

export type Action =
  | { readonly kind: 'placeholder'; readonly reason: Reason }
  | { readonly kind: 'issue'; readonly phase: AcmePhase; readonly reason: Reason }
  | { readonly kind: 'deploy'; readonly phase: AcmePhase; readonly reason: Reason }
  | { readonly kind: 'adopt'; readonly phase: AcmePhase; readonly reason: Reason }
  | {
      readonly kind: 'none';
      readonly reason: Reason;
      readonly renewAt?: Date;
      /** Set to `ari` when the CA's window decided; absent for the lifetime rule. */
      readonly renewSource?: RenewalSource;
    };

function sameDomains(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const sa = [...a].sort();
  const sb = [...b].sort();
  return sa.every((d, i) => d === sb[i]);
}

/**
 * Why `meta` cannot serve `facts` from `phase`'s CA right now, or Valid.
 * `forRenewal` also reports NearingExpiry inside the renewal window.
 */
export function assess(
  facts: CertFacts,
  phase: AcmePhase,
  now: Date,
  forRenewal: boolean,
): { reason: Reason; renewAt?: Date; renewSource?: RenewalSource } {
  const meta = facts.stored[phase];
  if (!meta) return { reason: Reason.NotIssued };
  if (!sameDomains(meta.domains, facts.domains)) return { reason: Reason.DomainsChanged };
  // Keyed on the directory URL, never on the issuer's name: Let's Encrypt
  // renames its intermediates, and the old sidecar re-issued forever then.
  if (meta.directoryUrl !== facts.directories[phase]) return { reason: Reason.IssuerChanged };
  if (!meta.chainVerified) return { reason: Reason.ChainUnverified };
  if (meta.keyType !== facts.keyType) return { reason: Reason.KeyTypeChanged };
  if (!sameProfile(meta, facts)) return { reason: Reason.ProfileChanged };
  const notAfter = new Date(meta.notAfter);
  if (now >= notAfter) return { reason: Reason.Expired };
  const lifetimeRule = renewalTime(new Date(meta.notBefore), notAfter, facts.renewBeforeDays);
  // The CA's window when it gave one for this very certificate (RFC 9773),
  // else the lifetime rule. An explicit RENEW_BEFORE_DAYS still renews
  // earlier than the window when it comes first (as certbot's
  // renew_before_expiry does beside ARI).
  const ari = facts.ari?.[phase];
  const drawn = ari?.serial === meta.serial ? ari.renewAt : undefined;
  const fromAri =
    drawn && !(explicitRenewBefore(meta, facts.renewBeforeDays) && lifetimeRule < drawn)
      ? drawn
      : undefined;
  const renewAt = fromAri ?? lifetimeRule;
  // Only an ARI time is marked; no mark is the lifetime rule.
  const source = fromAri ? { renewSource: 'ari' as const } : {};
  if (forRenewal && now >= renewAt) return { reason: Reason.NearingExpiry, renewAt, ...source };
  return { reason: Reason.Valid, renewAt, ...source };
}

/**
 * Does RENEW_BEFORE_DAYS speak for this certificate (set, and shorter than
 * its lifetime)? Then it renews earlier than the ARI window when it comes
 * first. A value at or above the lifetime was meant for another certificate
 * and yields to the window.
 */
function explicitRenewBefore(meta: CertMeta, renewBeforeDays: number | undefined): boolean {
  const lifetime = new Date(meta.notAfter).getTime() - new Date(meta.notBefore).getTime();
  const rb = renewBeforeFor(lifetime, renewBeforeDays);
  return rb !== undefined && rb.use !== 'beyond-lifetime';
}

/**
 * The phase whose record the certificate live/ serves can restore, or
 * undefined. The store lost (or never had) the record of what nginx
 * serves; if that certificate is one our CA issued for exactly these names
 * and key type, and still valid, taking it back costs no order (issue 16:
 * heal from what we still have before asking the CA). Never when a valid
 * stored certificate at least as good exists: that one is served instead.
 */
export function adoptablePhase(facts: CertFacts, now: Date): AcmePhase | undefined {
  const live = facts.live;
  const a = live?.adoptable;
  if (!live || live.phase !== 'foreign' || !a) return undefined;
  if (!sameDomains(a.domains, facts.domains) || a.keyType !== facts.keyType) return undefined;
  if (now >= new Date(live.notAfter)) return undefined;
  const valid = (p: AcmePhase) => assess(facts, p, now, false).reason === Reason.Valid;
  if (valid('production')) return undefined;
  if (a.from === 'staging' && valid('staging')) return undefined;
  return a.from;
}

/**
 * Has a staging order for exactly these hostnames succeeded against the
 * configured staging CA? Expiry does not matter: the proof is that the whole
 * path (DNS, nginx, webroot, CA) worked for these names.
 */
export function stagingProven(facts: CertFacts): boolean {
  const s = facts.stored.staging;
  return (
    s !== undefined &&
    s.chainVerified &&
    s.directoryUrl === facts.directories.staging &&
    sameDomains(s.domains, facts.domains) &&
    sameProfile(s, facts)
  );
}

/**
 * Was `meta` ordered under the profile wanted now? A certificate stored
 * before profiles existed records none and matches "no profile".
 */
function sameProfile(meta: CertMeta, facts: CertFacts): boolean {
  return (meta.profile ?? undefined) === (facts.profile ?? undefined);
}

/**
 * The certificate state machine: self-signed placeholder -> staging ->
 * production, then renewal. Returns the one next step; the reconciler acts
 * and asks again until the answer is `none` (or a step fails).
 */
export function decide(facts: CertFacts, now: Date): Action {
  const prod = assess(facts, 'production', now, true);
  const staging = assess(facts, 'staging', now, true);

  const adopt = adoptablePhase(facts, now);
  if (adopt) return { kind: 'adopt', phase: adopt, reason: Reason.Adopted };

  // The best usable certificate to serve. A valid production certificate is
  // preferred even when the target is staging: staging never replaces it.
  const usable = (phase: AcmePhase): boolean =>
    assess(facts, phase, now, false).reason === Reason.Valid;
  const best: AcmePhase | undefined = usable('production')
    ? 'production'
    : usable('staging')
      ? 'staging'
      : undefined;

  // A live production certificate that has not expired is never swapped for
  // a staging one, even one for new hostnames: staging is untrusted, and the
  // production order that follows replaces it within the same pass.
  const keepLiveProduction =
    best === 'staging' && facts.live?.phase === 'production' && now < new Date(facts.live.notAfter);
  if (best !== undefined && !keepLiveProduction) {
    const meta = facts.stored[best];
    if (meta && facts.live?.serial !== meta.serial) {
      return { kind: 'deploy', phase: best, reason: Reason.LiveOutdated };
    }
  } else if (!facts.live) {
    return { kind: 'placeholder', reason: Reason.Missing };
  } else if (facts.live.phase === 'self-signed' && now >= new Date(facts.live.notAfter)) {
    return { kind: 'placeholder', reason: Reason.PlaceholderExpired };
  }

  const targetValid = (facts.target === 'production' ? prod : staging).reason === Reason.Valid;
  if (facts.force && targetValid) {
    return { kind: 'issue', phase: facts.target, reason: Reason.Forced };
  }
  if (prod.reason === Reason.Valid) {
    return {
      kind: 'none',
      reason: Reason.Valid,
      ...(prod.renewAt && { renewAt: prod.renewAt }),
      ...(prod.renewSource && { renewSource: prod.renewSource }),
    };
  }
  if (facts.target === 'production') {
    if (!stagingProven(facts))
      return { kind: 'issue', phase: 'staging', reason: Reason.StagingFirst };
    const reason =
      prod.reason === Reason.NotIssued && facts.stored.staging ? Reason.StagingOnly : prod.reason;
    return { kind: 'issue', phase: 'production', reason };
  }
  if (staging.reason === Reason.Valid) {
    return {
      kind: 'none',
      reason: Reason.Valid,
      ...(staging.renewAt && { renewAt: staging.renewAt }),
      ...(staging.renewSource && { renewSource: staging.renewSource }),
    };
  }
  return { kind: 'issue', phase: 'staging', reason: staging.reason };
}
