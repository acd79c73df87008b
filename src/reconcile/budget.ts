import { rateLedgerKey, rateLedgerLockName } from '../store/keys.js';
import { SidecarError, errorCode, errorMessage } from '../domain/errors.js';
import type { AcmePhase } from '../domain/types.js';
import type { Clock } from '../lifecycle/clock.js';
import {
  LETSENCRYPT_PRODUCTION_LIMITS,
  LETSENCRYPT_STAGING_LIMITS,
  checkBudget,
  emptyLedger,
  lostLedger,
  prune,
  record,
  recordRateLimited,
  scopeForProblem,
  type Ledger,
  type Limit,
  type RateLimits,
} from '../lifecycle/rate-limits.js';
import { ledgerKind } from '../store/record-kinds.js';
import { RecordReader } from '../store/records.js';
import type { CertStore } from '../store/store.js';
import { silentLogger, type Logger } from '../util/log.js';

export type RateLimitMode = 'auto' | 'letsencrypt' | 'production' | 'off';

/** Which limits apply to an order from `phase`'s CA at `directoryUrl`. */
export function limitsFor(
  mode: RateLimitMode,
  phase: AcmePhase,
  directoryUrl: string,
): RateLimits | undefined {
  switch (mode) {
    case 'off':
      return undefined;
    case 'production':
      return LETSENCRYPT_PRODUCTION_LIMITS;
    case 'letsencrypt':
      return phase === 'production' ? LETSENCRYPT_PRODUCTION_LIMITS : LETSENCRYPT_STAGING_LIMITS;
    case 'auto': {
      const host = new URL(directoryUrl).hostname;
      if (host === 'acme-v02.api.letsencrypt.org') return LETSENCRYPT_PRODUCTION_LIMITS;
      if (host === 'acme-staging-v02.api.letsencrypt.org') return LETSENCRYPT_STAGING_LIMITS;
      return undefined;
    }
  }
}

/**
 * The spent rate-limit budget of each CA, kept in the store beside its
 * account (`acme/<ca>/rate-limits.json`) so it survives restarts. The
 * decisions are lifecycle/rate-limits.ts; this is the gather-and-record part.
 */
export class RateBudget {
  private readonly reader: RecordReader;

  constructor(
    private readonly store: CertStore,
    private readonly clock: Clock,
    private readonly mode: RateLimitMode,
    opts: { records?: RecordReader; log?: Logger } = {},
  ) {
    this.reader = opts.records ?? new RecordReader(store, clock, opts.log ?? silentLogger);
  }

  /**
   * Refuses (RATE_BUDGET_EXCEEDED, with the time it becomes possible) an order
   * that would exceed a budget; otherwise records it as spent before it is
   * sent, so an order whose answer is lost still counts.
   *
   * An `exempt` order (a renewal inside the CA's ARI window, placed with
   * `replaces`: Let's Encrypt exempts those from its limits) is counted but
   * never refused.
   */
  async beforeOrder(
    phase: AcmePhase,
    directoryUrl: string,
    domains: readonly string[],
    opts: { readonly exempt?: boolean } = {},
  ): Promise<void> {
    const limits = limitsFor(this.mode, phase, directoryUrl);
    if (!limits) return;
    await this.update(directoryUrl, limits, (ledger, now) => {
      const decision = checkBudget(ledger, { account: directoryUrl, domains }, limits, now);
      if (!decision.ok && !opts.exempt) {
        throw new SidecarError('RATE_BUDGET_EXCEEDED', `not ordering: ${decision.message}`, {
          retryable: true,
          retryAfter: Math.max(1, Math.ceil((decision.retryAt.getTime() - now.getTime()) / 1000)),
        });
      }
      return record(ledger, {
        at: now.toISOString(),
        kind: 'order',
        account: directoryUrl,
        domains,
      });
    });
  }

  /** Records what the order came to: a certificate, a failed validation, or the CA's own rate limit. */
  async afterOrder(
    phase: AcmePhase,
    directoryUrl: string,
    domains: readonly string[],
    outcome: 'issued' | unknown,
  ): Promise<void> {
    const limits = limitsFor(this.mode, phase, directoryUrl);
    if (!limits) return;
    const code = outcome === 'issued' ? 'issued' : errorCode(outcome);
    if (code !== 'issued' && code !== 'ACME_VALIDATION_FAILED' && code !== 'ACME_RATE_LIMITED')
      return;
    await this.update(directoryUrl, limits, (ledger, now) => {
      const at = now.toISOString();
      if (code === 'issued')
        return record(ledger, { at, kind: 'issued', account: directoryUrl, domains });
      if (code === 'ACME_VALIDATION_FAILED') {
        return record(ledger, { at, kind: 'failedValidation', account: directoryUrl, domains });
      }
      const detail = errorMessage(outcome);
      const retryAfter = outcome instanceof SidecarError ? outcome.retryAfter : undefined;
      const scope = scopeForProblem(detail, { account: directoryUrl, domains });
      return recordRateLimited(ledger, scope, retryAfter, now, detail);
    });
  }

  /** Read, change and write the ledger under its lock (certificates are worked on in parallel). */
  private async update(
    directoryUrl: string,
    limits: RateLimits,
    change: (ledger: Ledger, now: Date) => Ledger,
  ): Promise<void> {
    const key = rateLedgerKey(directoryUrl);
    const lock = rateLedgerLockName(directoryUrl);
    await this.store.lock(lock);
    try {
      const now = this.clock.now();
      const got = await this.reader.inspect(key, ledgerKind);
      // Safe default for a corrupt ledger (kept aside): spent, not empty.
      const ledger =
        got.state === 'ok'
          ? got.value
          : got.state === 'corrupt'
            ? lostLedger(
                directoryUrl,
                Object.values(limits).map((l: Limit) => l.windowMs),
                now,
              )
            : emptyLedger();
      await this.store.store(key, JSON.stringify(change(prune(ledger, limits, now), now)));
    } finally {
      await this.store.unlock(lock);
    }
  }
}
