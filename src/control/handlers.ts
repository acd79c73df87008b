import type { ErrorCode } from '../domain/errors.js';
import type { CertSpec } from '../domain/types.js';
import { type CertStatus, type StatusSnapshot } from '../domain/status.js';
import {
  forcedRenewDecision,
  RenewRefusal,
  type LastForcedRenewal,
} from '../lifecycle/renew-cooldown.js';
import { span } from '../util/durations.js';
import { cleanMessage } from '../util/redact.js';
import { DEFAULT_CONCURRENCY } from '../domain/types.js';
import {
  ControlHandlerError,
  type ControlHandlers,
  type RenewResult,
  type RenewTarget,
} from './protocol.js';

export interface ReconcilerControlDeps {
  /** What `GET /v1/status` serves (the app's `snapshot`). */
  readonly status: () => StatusSnapshot;
  /** The certificates of the last discovery; undefined until the first one has run. */
  readonly specs: () => readonly CertSpec[] | undefined;
  readonly reconciler: {
    readonly status: ReadonlyMap<string, CertStatus>;
    reconcileOne(
      spec: CertSpec,
      signal?: AbortSignal,
      opts?: { force?: boolean },
    ): Promise<CertStatus>;
  };
  /** The daemon's shutdown signal. */
  readonly signal: AbortSignal;
  readonly now: () => Date;
  /** Certificates renewed at once by `renew --all` (`MAX_CONCURRENT_ORDERS`, as a pass). */
  readonly concurrency?: number;
  /** `RENEW_COOLDOWN`: seconds after a forced renewal started before another is accepted. */
  readonly cooldownSeconds: number;
}

/**
 * The daemon's side of the socket. `renew` runs `reconcileOne` with
 * `force`, which skips the failure backoff, except after the CA itself
 * rate-limited the certificate: that wait is the CA's, and forcing it would
 * only spend more of the budget (Let's Encrypt counts failed orders too).
 *
 * `force` does not re-issue a certificate that is valid and not yet due:
 * the lifecycle decides what the next step is; `renew` only makes it
 * happen now.
 */
export function reconcilerHandlers(deps: ReconcilerControlDeps): ControlHandlers {
  /**
   * The last forced renewal of each certificate, for the cooldown
   * (lifecycle/renew-cooldown.ts). Kept in this process only, not in the
   * store: a restart forgets it, which costs at most one more forced
   * renewal per certificate per restart, and the CA requests themselves
   * stay counted by the persisted `RATE_LIMITS` ledger. In cluster mode only
   * the leader forces, so its memory is the one that counts.
   */
  const forced = new Map<string, LastForcedRenewal>();

  async function renewOne(spec: CertSpec): Promise<RenewResult> {
    const before = deps.reconciler.status.get(spec.name);
    const now = deps.now();
    const decision = forcedRenewDecision(forced.get(spec.name), now, deps.cooldownSeconds);
    if (!decision.allow) {
      const base = before
        ? toRenewResult(before)
        : { name: spec.name, phase: 'none' as const, ok: false };
      return {
        ...base,
        ok: false,
        error: {
          code: 'RENEW_COOLDOWN' satisfies ErrorCode,
          message:
            decision.reason === RenewRefusal.InProgress
              ? `not forced: a forced renewal of ${spec.name} is running now (${decision.reason})`
              : `not forced: ${spec.name} was forced less than ${span(deps.cooldownSeconds)} ago (RENEW_COOLDOWN); try again in ${span(decision.secondsLeft)} (${decision.reason})`,
        },
      };
    }
    if (
      before?.lastError?.code === 'ACME_RATE_LIMITED' &&
      before.nextRetry &&
      deps.now() < new Date(before.nextRetry)
    ) {
      return {
        ...toRenewResult(before),
        ok: false,
        error: {
          code: 'ACME_RATE_LIMITED',
          message: `not forced: the CA rate-limited the last attempt; next try at ${before.nextRetry} (${before.lastError.message})`,
        },
      };
    }
    const startedAt = now;
    forced.set(spec.name, { startedAt, running: true });
    try {
      const after = await deps.reconciler.reconcileOne(spec, deps.signal, { force: true });
      forced.set(spec.name, { startedAt, running: false });
      return toRenewResult(after);
    } catch (err) {
      // Refused before any work (not the leader, shutting down): nothing was forced.
      if (err instanceof ControlHandlerError) forced.delete(spec.name);
      else forced.set(spec.name, { startedAt, running: false });
      throw err;
    }
  }

  return {
    status: deps.status,
    async renew(target: RenewTarget): Promise<RenewResult[]> {
      if (deps.signal.aborted) throw new ControlHandlerError('UNAVAILABLE', 'shutting down');
      const specs = deps.specs();
      if (!specs) {
        throw new ControlHandlerError(
          'UNAVAILABLE',
          'the first discovery has not finished yet; try again in a moment',
        );
      }
      if ('name' in target) {
        const spec = specs.find((s) => s.name === target.name);
        if (!spec) {
          const known = specs.map((s) => s.name);
          const list =
            known.length === 0
              ? 'none is configured'
              : `known: ${known.slice(0, 10).join(', ')}${known.length > 10 ? ', …' : ''}`;
          throw new ControlHandlerError(
            'NOT_FOUND',
            `no certificate named ${JSON.stringify(target.name)} (${list})`,
          );
        }
        return [await renewOne(spec)];
      }
      const results = new Map<string, RenewResult>();
      const queue = [...specs];
      const workers = Array.from(
        { length: Math.min(deps.concurrency ?? DEFAULT_CONCURRENCY, queue.length) },
        async () => {
          for (let spec = queue.shift(); spec; spec = queue.shift()) {
            results.set(spec.name, await renewOne(spec));
          }
        },
      );
      await Promise.all(workers);
      // In discovery order, whatever order they finished in.
      return specs.map((s) => results.get(s.name)).filter((r): r is RenewResult => !!r);
    },
  };
}

/** A certificate's status after a renewal attempt, as the socket reports it. */
export function toRenewResult(st: CertStatus): RenewResult {
  return {
    name: st.name,
    ok: st.ready,
    phase: st.phase,
    ...(st.serial !== undefined && { serial: st.serial }),
    ...(st.lastError && {
      error: { code: st.lastError.code, message: cleanMessage(st.lastError.message) },
    }),
  };
}
