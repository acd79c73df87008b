import { assess, type CertFacts } from './policy.js';
import type { PlatformFacts } from './platform-policy.js';

/**
 * The idle shortcut's time side (issue 15, goal 4): how long a decision
 * made on unchanged facts stays the same decision. `decide` and
 * `decidePlatform` depend on the clock only by comparing `now` with fixed
 * instants taken from their facts (an expiry, a renewal time); between two
 * such instants their answer cannot change. A certificate whose inputs did
 * not change (reconcile/steady.ts checks that) is therefore not decided
 * again before the first instant still ahead: that is when a full pass
 * would first answer differently.
 *
 * Pure: `now` is given, nothing is read.
 */

const DAY_MS = 24 * 60 * 60 * 1000;

/** The earliest of `instants` (ms, NaN ignored) strictly after `now`; Infinity when none. */
function firstAfter(instants: readonly number[], now: number): number {
  let first = Infinity;
  for (const t of instants) if (t > now && t < first) first = t;
  return first;
}

/**
 * Until when (ms since the epoch, exclusive) `decide(facts, t)` gives the
 * same action as `decide(facts, now)`: the first instant after `now` at
 * which one of its comparisons turns. Those are, per stored phase, its
 * notAfter and its renewal time (lifetime rule or ARI, as `assess` picks
 * it; neither depends on `now`), and live/'s notAfter. An instant already
 * passed never turns back: it does not bound anything.
 */
export function decisionStableUntil(facts: CertFacts, now: Date): number {
  const instants: number[] = [];
  for (const phase of ['staging', 'production'] as const) {
    const meta = facts.stored[phase];
    if (!meta) continue;
    instants.push(Date.parse(meta.notAfter));
    const renewAt = assess(facts, phase, now, false).renewAt;
    if (renewAt) instants.push(renewAt.getTime());
  }
  if (facts.live) instants.push(Date.parse(facts.live.notAfter));
  return firstAfter(instants, now.getTime());
}

/**
 * Until when (ms, exclusive) `decidePlatform(facts, t)` answers as at
 * `now`: its only clock comparisons are with the platform copy's notAfter
 * (still valid?) and seven days before it (expiring?).
 */
export function platformStableUntil(facts: PlatformFacts, now: Date): number {
  const notAfter = facts.copy?.notAfter;
  if (notAfter === undefined) return Infinity;
  const t = Date.parse(notAfter);
  return firstAfter([t - 7 * DAY_MS, t], now.getTime());
}

/** What a settled certificate's last full pass left, for the next pass to compare with. */
export interface SteadyMark {
  /** Wanted names and profile, as the pass saw them (`steadyKey`). */
  readonly key: string;
  /** Identities of every input the pass decided on (store records, live/, platform copy). */
  readonly inputs: readonly unknown[];
  /** ms since the epoch: the first deadline (renewal, expiry, ARI check, ...) after that pass. */
  readonly until: number;
}

/**
 * The part of a certificate's spec a decision reads: its names and profile
 * (names in the order given: another order only costs a full pass).
 */
export function steadyKey(domains: readonly string[], profile: string | undefined): string {
  return `${profile ?? ''}|${domains.join(',')}`;
}

/**
 * May this pass skip the certificate? Only when the last full pass settled
 * it (`mark`), nothing forces work, the names and profile are the same,
 * every input is the very same (a changed or unvouched one is a different
 * or an undefined identity), and no deadline has come.
 */
export function steadyHolds(
  mark: SteadyMark | undefined,
  now: Date,
  current: { readonly key: string; readonly inputs: readonly unknown[]; readonly force?: boolean },
): boolean {
  if (!mark || current.force) return false;
  if (mark.key !== current.key || now.getTime() >= mark.until) return false;
  if (mark.inputs.length !== current.inputs.length) return false;
  for (let i = 0; i < mark.inputs.length; i++) {
    const x = current.inputs[i];
    if (x === undefined || x !== mark.inputs[i]) return false;
  }
  return true;
}
