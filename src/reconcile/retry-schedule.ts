import { SidecarError, errorCode, errorMessage } from '../domain/errors.js';
import type { CertStatus } from '../domain/status.js';
import type { CertSpec } from '../domain/types.js';
import { retryDelayMs } from '../lifecycle/policy.js';
import { backoffKey } from '../store/keys.js';
import { backoffKind } from '../store/record-kinds.js';
import type { RecordReader } from '../store/records.js';
import type { Logger } from '../util/log.js';
import type { ReconcilerDeps } from './deps.js';

/**
 * Failures and their retry schedule. The schedule survives restarts (a
 * crash loop must not hammer the CA): read once per certificate per
 * process, written on every failure, deleted once the certificate settles.
 */
export class RetrySchedule {
  private readonly loaded = new Set<string>();
  private readonly random: () => number;

  constructor(
    private readonly deps: Pick<
      ReconcilerDeps,
      'store' | 'clock' | 'settings' | 'onFailure' | 'random'
    >,
    private readonly reader: RecordReader,
  ) {
    this.random = deps.random ?? Math.random;
  }

  async load(st: CertStatus, spec: CertSpec): Promise<void> {
    if (this.loaded.has(st.name)) return;
    this.loaded.add(st.name);
    // Safe default for a corrupt schedule (kept aside, record-kinds.ts):
    // none, so the certificate is tried now and a failure starts it again.
    // An unreadable store: the same, and the next failure rewrites it.
    const b = await this.reader
      .read(backoffKey(st.name), backoffKind, { cert: st.name })
      .catch(() => undefined);
    if (!b) return;
    // A schedule belongs to the configuration it failed under: a fixed CA
    // URL, other hostnames or another target phase get a fresh start.
    if (b.context !== this.context(spec)) return;
    st.attempts = b.attempts;
    if (b.nextRetry !== undefined) st.nextRetry = b.nextRetry;
    if (b.lastError) st.lastError = b.lastError;
  }

  /** The certificate settled: forget its failures. */
  clear(st: CertStatus): Promise<void> {
    const hadBackoff = st.attempts > 0 || st.nextRetry !== undefined;
    st.attempts = 0;
    delete st.nextRetry;
    delete st.lastError;
    return hadBackoff ? this.deps.store.delete(backoffKey(st.name)) : Promise.resolve();
  }

  /**
   * Records a failed step on the certificate. Shutdown (ABORTED) is not an
   * attempt and keeps no schedule; a rate budget refusal sent nothing, so it
   * waits exactly until the budget allows; anything else counts an attempt
   * and backs off.
   */
  async fail(
    st: CertStatus,
    err: unknown,
    log: Logger,
    spec: Pick<CertSpec, 'profile'> = {},
  ): Promise<void> {
    const now = this.deps.clock.now();
    const retryAfter = err instanceof SidecarError ? err.retryAfter : undefined;
    const aborted = errorCode(err) === 'ABORTED';
    if (errorCode(err) === 'RATE_BUDGET_EXCEEDED') {
      // Nothing was sent: not an attempt; try again exactly when the budget allows.
      st.nextRetry = new Date(now.getTime() + (retryAfter ?? 3600) * 1000).toISOString();
    } else if (!aborted) {
      st.attempts += 1;
      // Time left on what is served, from the CA we target or not: a
      // placeholder's or a staging certificate's end matters as much.
      const untilExpiry =
        st.notAfter !== undefined ? Date.parse(st.notAfter) - now.getTime() : undefined;
      const delay = retryDelayMs(
        st.attempts,
        this.random,
        retryAfter,
        untilExpiry,
        st.phase === 'self-signed',
      );
      st.nextRetry = new Date(now.getTime() + delay).toISOString();
    }
    st.lastError = { code: errorCode(err), message: errorMessage(err), at: now.toISOString() };
    this.deps.onFailure?.(st.name, st.lastError.code);
    if (!aborted) {
      const record = {
        attempts: st.attempts,
        nextRetry: st.nextRetry,
        lastError: st.lastError,
        context: this.context({ domains: st.domains, profile: spec.profile }),
      };
      await this.deps.store
        .store(backoffKey(st.name), JSON.stringify(record))
        .catch((e: unknown) =>
          log.warn('could not persist the retry schedule', { error: errorMessage(e) }),
        );
    }
    (aborted ? log.info : log.error).call(log, 'certificate step failed', {
      code: st.lastError.code,
      error: st.lastError.message,
      attempt: st.attempts,
      nextRetry: st.nextRetry,
    });
  }

  /** What a retry schedule is valid for. */
  private context(spec: { domains: readonly string[]; profile?: string | undefined }): string {
    const { target, directories, keyType, accountContext = '' } = this.deps.settings;
    const domains = [...spec.domains].sort().join(',');
    return [
      target,
      directories.staging,
      directories.production,
      keyType,
      accountContext,
      domains,
      // Only when set, so schedules kept before profiles still apply.
      ...(spec.profile !== undefined ? [`profile=${spec.profile}`] : []),
    ].join('|');
  }
}
