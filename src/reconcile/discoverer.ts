import { errorCode, errorMessage } from '../domain/errors.js';
import type { CertSpec } from '../domain/types.js';
import type { DiscoveryProblem } from '../domain/status.js';
import { systemClock, type Clock } from '../lifecycle/clock.js';
import {
  decideOwnership,
  EMPTY_CLAIMS,
  ownershipStableUntil,
  type ClaimsRecord,
  type OwnershipDecision,
} from '../lifecycle/ownership.js';
import type { RecordSlot } from '../lifecycle/platform-memory.js';
import type { Platform } from '../platform/platform.js';
import type { Logger } from '../util/log.js';

export interface DiscoveryResult {
  readonly specs: readonly CertSpec[];
  readonly problems: readonly DiscoveryProblem[];
  /** Set when the platform could not be read and the last known set is used. */
  readonly error?: { readonly code: string; readonly message: string };
}

export interface DiscovererOptions {
  /** ALLOWED_DOMAINS (canonical); empty: any hostname. */
  readonly allowedDomains?: readonly string[];
  /**
   * The claims record (`claims.json`, store/record-slot.ts: read through the
   * RecordReader, so a corrupt one is kept aside and reported as
   * STORE_CORRUPT, or only named in a dry run). Without it, claims last as
   * long as the process.
   */
  readonly claims?: RecordSlot<ClaimsRecord>;
  readonly clock?: Clock;
  /** How long a claim outlives its source's last request (lifecycle/ownership.ts). */
  readonly claimReleaseMs?: number;
}

/**
 * Discovery that never mistakes a failed read for "no hostnames": when the
 * platform cannot be read (timeout, 5xx, bad JSON, 401, a page failing
 * mid-way), the last successfully discovered set is kept, so nothing stops
 * being renewed (and nothing is ever removed) because of an outage.
 *
 * Then who may ask for what (lifecycle/ownership.ts): ALLOWED_DOMAINS, and
 * the first holder of a certificate name or hostname keeps it, across
 * restarts, through the claims record in the store (`claims.json`, sealed
 * like every value in etcd). The record as read:
 * - absent: no claims yet (first start, or an upgrade): requests are
 *   decided in discovery order, DOMAINS first, and become the claims;
 * - corrupt (not JSON of the expected shape): kept aside and reported as
 *   STORE_CORRUPT by the RecordReader (a dry run only names it), and
 *   treated like absent, then rewritten; a sealed value that does not open:
 *   logged at error, and the same.
 *   The safe default available: nothing is served differently because of
 *   it (live/ keeps what it has), and DOMAINS, written by the operator,
 *   still comes first; only between two labels does discovery order decide
 *   again, once;
 * - unreadable (store down): the claims this process last knew are used
 *   and nothing is written until the store answers.
 */
export class Discoverer {
  private last: { specs: readonly CertSpec[]; problems: readonly DiscoveryProblem[] } = {
    specs: [],
    problems: [],
  };
  private claims: ClaimsRecord = EMPTY_CLAIMS;
  private readonly clock: Clock;
  /**
   * The last decision that changed no claim, with what it was made from: the
   * same requests (the very same spec objects, in the same order: the
   * platforms keep them while nothing changed), the same claims record
   * (parsed once per change) decide the same until `until`
   * (ownershipStableUntil), so an idle pass does not decide again.
   */
  private kept:
    | {
        readonly requests: readonly CertSpec[];
        readonly claims: ClaimsRecord;
        readonly until: number;
        readonly decision: OwnershipDecision;
      }
    | undefined;

  constructor(
    private readonly platform: Platform,
    private readonly log: Logger,
    private readonly opts: DiscovererOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  /** `persist: false` (dry runs): decide with the stored claims, write nothing. */
  async discover(opts: { persist?: boolean } = {}): Promise<DiscoveryResult> {
    let found;
    try {
      found = await this.platform.discover({ persist: opts.persist !== false });
    } catch (err) {
      const error = { code: errorCode(err), message: errorMessage(err) };
      this.log.error('discovery failed; keeping the last known certificates', {
        code: error.code,
        error: error.message,
        kept: this.last.specs.length,
      });
      return { ...this.last, error };
    }
    const { claims, writable } = await this.loadClaims(opts.persist !== false);
    const now = this.clock.now();
    const kept = this.kept;
    const decision =
      kept &&
      kept.claims === claims &&
      now.getTime() < kept.until &&
      sameItems(kept.requests, found.specs)
        ? kept.decision
        : decideOwnership({
            requests: found.specs,
            claims,
            allowed: this.opts.allowedDomains ?? [],
            now,
            ...(this.opts.claimReleaseMs !== undefined && {
              releaseAfterMs: this.opts.claimReleaseMs,
            }),
          });
    if (decision.changed) {
      this.kept = undefined;
    } else if (decision !== kept?.decision) {
      this.kept = {
        requests: found.specs,
        claims,
        until: ownershipStableUntil(claims, now, this.opts.claimReleaseMs),
        decision,
      };
    }
    if (opts.persist !== false) {
      this.claims = decision.claims;
      if (decision.changed && writable && this.opts.claims) {
        await this.opts.claims.save(decision.claims).catch((err: unknown) =>
          this.log.warn('could not save the certificate claims; saving at the next pass', {
            code: errorCode(err),
            error: errorMessage(err),
          }),
        );
      }
    }
    const result = { specs: decision.specs, problems: [...found.problems, ...decision.problems] };
    this.last = result;
    for (const p of result.problems) {
      this.log.warn('hostname skipped', {
        source: p.source,
        value: p.value,
        code: p.code,
        error: p.message,
      });
    }
    return result;
  }

  /** `persist: false` (dry runs): a corrupt record is only named, not kept aside. */
  private async loadClaims(persist: boolean): Promise<{ claims: ClaimsRecord; writable: boolean }> {
    const slot = this.opts.claims;
    if (!slot) return { claims: this.claims, writable: false };
    let got: Awaited<ReturnType<typeof slot.load>>;
    try {
      got = await slot.load({ persist });
    } catch (err) {
      if (errorCode(err) !== 'STORE_DECRYPT_FAILED') {
        this.log.warn('could not read the certificate claims; using the last known ones', {
          code: errorCode(err),
          error: errorMessage(err),
        });
        return { claims: this.claims, writable: false };
      }
      this.log.error('the certificate claims record does not open; starting from no claims', {
        code: errorCode(err),
        error: errorMessage(err),
      });
      return { claims: EMPTY_CLAIMS, writable: true };
    }
    if (got.state === 'corrupt' && !persist) {
      // A run keeps it aside and reports it (the reader); a dry run only names it.
      this.log.error('the certificate claims record is corrupt; a run would start from no claims', {
        code: 'STORE_CORRUPT',
      });
    }
    // Missing or corrupt: the safe default is no claims.
    return { claims: got.state === 'ok' ? got.value : EMPTY_CLAIMS, writable: true };
  }
}

/** The very same objects in the same order. */
function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
