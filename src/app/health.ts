/**
 * Readiness (`/readyz`): a pure function of what the daemon knows and now.
 */
import type { LastPass } from '../domain/status.js';

export interface ReadinessFacts {
  /**
   * A cluster replica that does not lead: its own reasons (empty when its
   * live/ is synced). Undefined when this node acts.
   */
  readonly follower?: readonly string[];
  readonly lastPass?: LastPass;
  /** Did the store answer after the last pass? */
  readonly storeOk: boolean;
  /** LOOP_TIME; 0 when passes run only on CHECK_SCHEDULE (daily). */
  readonly loopTimeSeconds: number;
  /** For the message when the store cannot be read. */
  readonly stateDir: string;
}

export interface Readiness {
  readonly ok: boolean;
  readonly reasons: string[];
}

/**
 * How old the last pass may be: three LOOP_TIMEs and a minute, or a day and
 * two hours when passes only run on the daily schedule.
 */
export function maxPassAgeMs(loopTimeSeconds: number): number {
  return loopTimeSeconds > 0 ? 3 * loopTimeSeconds * 1000 + 60_000 : 26 * 3600_000;
}

/**
 * Ready: the store answers and a pass finished recently with discovery
 * working. A replica that does not lead serves what the cluster published,
 * so only its sync counts.
 */
export function readiness(facts: ReadinessFacts, now: Date): Readiness {
  if (facts.follower) return { ok: facts.follower.length === 0, reasons: [...facts.follower] };
  const reasons: string[] = [];
  const { lastPass } = facts;
  if (!lastPass) reasons.push('the first pass has not finished yet');
  else {
    if (lastPass.discoveryError) reasons.push(`discovery failed: ${lastPass.discoveryError}`);
    if (
      now.getTime() - new Date(lastPass.finishedAt).getTime() >
      maxPassAgeMs(facts.loopTimeSeconds)
    ) {
      reasons.push(`no pass finished since ${lastPass.finishedAt}`);
    }
  }
  if (!facts.storeOk) reasons.push(`the store under ${facts.stateDir} cannot be read`);
  return { ok: reasons.length === 0, reasons };
}
