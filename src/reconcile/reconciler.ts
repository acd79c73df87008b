import type { Issuer } from '../acme/issuer.js';
import { SidecarError, errorCode, errorMessage } from '../domain/errors.js';
import {
  PHASES,
  type AcmePhase,
  type CertSpec,
  type KeyType,
  type Phase,
  type StoredCert,
} from '../domain/types.js';
import type { Clock } from '../lifecycle/clock.js';
import {
  decide,
  retryDelayMs,
  type Action,
  type CertFacts,
  type LiveFacts,
} from '../lifecycle/policy.js';
import { ReconcileReason, Reason } from '../lifecycle/reasons.js';
import { decidePlatform, type PlatformAction } from '../lifecycle/platform-policy.js';
import type { Platform } from '../platform/platform.js';
import { backoffKey, certLockName, storedKey } from '../store/keys.js';
import type { CertStore } from '../store/store.js';
import type { Logger } from '../util/log.js';
import { describeBundle } from '../util/x509.js';
import type { RateBudget } from './budget.js';
import { certificateEvent, type HookRunner } from '../hooks/hooks.js';
import { X509Certificate } from 'node:crypto';
import type { CertBundle } from '../domain/types.js';
import type { CertStatus, LiveTarget } from '../domain/status.js';

export interface ReconcilerSettings {
  readonly target: AcmePhase;
  readonly keyType: KeyType;
  readonly renewBeforeDays?: number;
  readonly directories: Readonly<Record<AcmePhase, string>>;
  /** Certificates worked on at once. */
  readonly concurrency?: number;
  /**
   * Other configuration a failure may depend on (account email, EAB key
   * id): a retry schedule made under other values does not apply.
   */
  readonly accountContext?: string;
}

export interface ReconcilerDeps {
  /** Run after a certificate changes in live/ (command, webhook, combined PEM). */
  readonly hooks?: HookRunner;
  /** The CA rate-limit budget; none means unlimited. */
  readonly budget?: RateBudget;
  /** Told of every failed step (metrics). */
  readonly onFailure?: (name: string, code: string) => void;
  readonly store: CertStore;
  readonly live: LiveTarget;
  readonly issuers: Readonly<Record<Phase, Issuer>>;
  readonly platform: Platform;
  readonly clock: Clock;
  readonly log: Logger;
  readonly settings: ReconcilerSettings;
  readonly random?: () => number;
}

/** Steps one certificate may take in one pass before it counts as not settling. */
export const MAX_STEPS = 8;

/**
 * Drives each certificate through the lifecycle: gather facts, decide
 * (pure, in lifecycle/), and act; one step at a time until nothing is left
 * to do or a step fails. A failure is recorded on that certificate and
 * backed off; it never stops the others.
 */
export class Reconciler {
  readonly status = new Map<string, CertStatus>();
  private readonly backoffLoaded = new Set<string>();
  private readonly random: () => number;

  constructor(private readonly deps: ReconcilerDeps) {
    this.random = deps.random ?? Math.random;
  }

  /** One pass over every wanted certificate. */
  async reconcileAll(specs: readonly CertSpec[], signal?: AbortSignal): Promise<CertStatus[]> {
    const wanted = new Set(specs.map((s) => s.name));
    for (const name of this.status.keys()) if (!wanted.has(name)) this.status.delete(name);
    const queue = [...specs];
    const workers = Array.from(
      { length: Math.min(this.deps.settings.concurrency ?? 4, queue.length) },
      async () => {
        for (let spec = queue.shift(); spec; spec = queue.shift()) {
          if (signal?.aborted) return;
          await this.reconcileOne(spec, signal);
        }
      },
    );
    await Promise.all(workers);
    return specs.map((s) => this.status.get(s.name)).filter((s): s is CertStatus => !!s);
  }

  /** Brings one certificate as far as it can go now. Never throws. */
  async reconcileOne(
    spec: CertSpec,
    signal?: AbortSignal,
    opts: { force?: boolean } = {},
  ): Promise<CertStatus> {
    const { clock, log: rootLog } = this.deps;
    const log = rootLog.child({ cert: spec.name, domains: spec.domains });
    const st = this.statusOf(spec);
    await this.loadBackoff(st, spec);
    if (!opts.force && st.nextRetry && clock.now() < new Date(st.nextRetry)) {
      st.reason = ReconcileReason.Backoff;
      return st;
    }
    // A forced renewal is spent by the first order from the target CA.
    let force = opts.force === true;
    try {
      await this.noteLostLocalCopy(spec, log);
      for (let step = 0; step < MAX_STEPS; step++) {
        if (signal?.aborted) throw new SidecarError('ABORTED', 'shutting down');
        const action = decide({ ...(await this.gather(spec)), force }, clock.now());
        if (action.kind === 'none') {
          await this.syncPlatform(spec, log);
          await this.settle(st, action);
          return st;
        }
        st.reason = action.reason;
        let deployed: StoredCert | undefined;
        await this.withLock(spec.name, async () => {
          // Someone may have done the work while we waited for the lock.
          const again = decide({ ...(await this.gather(spec)), force }, clock.now());
          if (sameAction(again, action)) deployed = await this.act(spec, again, log, signal);
        });
        if (deployed) {
          st.deployedAt = clock.now().toISOString();
          // Outside the lock; never throws, bounded by its timeouts.
          await this.deps.hooks?.run(
            certificateEvent(deployed.meta, this.deps.live.path(spec.name)),
            deployed.bundle,
          );
        }
        if (action.kind === 'issue' && action.phase === this.deps.settings.target) force = false;
      }
      // Not shutdown: a certificate that does not settle is a failure like
      // any other, counted and backed off.
      throw new SidecarError(
        'NO_STEADY_STATE',
        `no steady state after ${MAX_STEPS} steps (last: ${st.reason})`,
        { retryable: true },
      );
    } catch (err) {
      await this.fail(st, err, log);
      return st;
    } finally {
      await this.refreshLive(spec, st);
    }
  }

  /**
   * What the next pass would do for `spec`, changing nothing: the lifecycle
   * decision and, once that is steady, the platform decision.
   */
  async plan(spec: CertSpec): Promise<{ action: Action; platform?: PlatformAction }> {
    const { clock, platform } = this.deps;
    const facts = await this.gather(spec);
    const action = decide(facts, clock.now());
    if (action.kind !== 'none' || !platform.holdsCertificates) return { action };
    const [copy, records] = await Promise.all([platform.read(spec.name), this.loadAll(spec.name)]);
    const serials = Object.fromEntries(
      Object.entries(records).map(([phase, r]) => [phase, r?.meta.serial]),
    ) as Partial<Record<Phase, string>>;
    return {
      action,
      platform: decidePlatform(
        { ...(facts.live && { live: facts.live }), ...(copy && { copy }), serials },
        clock.now(),
      ),
    };
  }

  private statusOf(spec: CertSpec): CertStatus {
    let st = this.status.get(spec.name);
    if (!st || st.domains.join() !== spec.domains.join()) {
      st = {
        name: spec.name,
        domains: spec.domains,
        phase: 'none',
        reason: Reason.Missing,
        ready: false,
        attempts: 0,
      };
      this.status.set(spec.name, st);
    }
    return st;
  }

  private settle(st: CertStatus, action: Action & { kind: 'none' }): Promise<void> {
    st.reason = action.reason;
    const hadBackoff = st.attempts > 0 || st.nextRetry !== undefined;
    st.attempts = 0;
    delete st.nextRetry;
    delete st.lastError;
    if (action.renewAt) st.renewAt = action.renewAt.toISOString();
    return hadBackoff ? this.deps.store.delete(backoffKey(st.name)) : Promise.resolve();
  }

  /**
   * The retry schedule survives restarts (a crash loop must not hammer the
   * CA): read once per certificate per process, written on every failure.
   */
  private async loadBackoff(st: CertStatus, spec: CertSpec): Promise<void> {
    if (this.backoffLoaded.has(st.name)) return;
    this.backoffLoaded.add(st.name);
    const raw = await this.deps.store.load(backoffKey(st.name)).catch(() => undefined);
    if (!raw) return;
    try {
      const b = JSON.parse(raw.toString()) as Pick<
        CertStatus,
        'attempts' | 'nextRetry' | 'lastError'
      > & { context?: string };
      // A schedule belongs to the configuration it failed under: a fixed CA
      // URL, other hostnames or another target phase get a fresh start.
      if (b.context !== this.backoffContext(spec)) return;
      if (typeof b.attempts === 'number') st.attempts = b.attempts;
      if (typeof b.nextRetry === 'string') st.nextRetry = b.nextRetry;
      if (b.lastError) st.lastError = b.lastError;
    } catch {
      // A damaged record only loses the schedule; the next failure rewrites it.
    }
  }

  private async fail(st: CertStatus, err: unknown, log: Logger): Promise<void> {
    const now = this.deps.clock.now();
    const retryAfter = err instanceof SidecarError ? err.retryAfter : undefined;
    const aborted = errorCode(err) === 'ABORTED';
    if (errorCode(err) === 'RATE_BUDGET_EXCEEDED') {
      // Nothing was sent: not an attempt; try again exactly when the budget allows.
      st.nextRetry = new Date(now.getTime() + (retryAfter ?? 3600) * 1000).toISOString();
    } else if (!aborted) {
      st.attempts += 1;
      st.nextRetry = new Date(
        now.getTime() + retryDelayMs(st.attempts, this.random, retryAfter),
      ).toISOString();
    }
    st.lastError = { code: errorCode(err), message: errorMessage(err), at: now.toISOString() };
    this.deps.onFailure?.(st.name, st.lastError.code);
    if (!aborted) {
      const record = {
        attempts: st.attempts,
        nextRetry: st.nextRetry,
        lastError: st.lastError,
        context: this.backoffContext(st),
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
  private backoffContext(spec: Pick<CertSpec, 'domains'>): string {
    const { target, directories, keyType, accountContext = '' } = this.deps.settings;
    const domains = [...spec.domains].sort().join(',');
    return [
      target,
      directories.staging,
      directories.production,
      keyType,
      accountContext,
      domains,
    ].join('|');
  }

  private async withLock(name: string, fn: () => Promise<void>): Promise<void> {
    const lock = certLockName(name);
    await this.deps.store.lock(lock);
    try {
      await fn();
    } finally {
      await this.deps.store.unlock(lock);
    }
  }

  private async loadStored(name: string, phase: Phase): Promise<StoredCert | undefined> {
    const raw = await this.deps.store.load(storedKey(name, phase));
    return raw ? (JSON.parse(raw.toString()) as StoredCert) : undefined;
  }

  /** The facts a decision needs, read fresh from the store and live/. */
  async gather(spec: CertSpec): Promise<CertFacts> {
    const { settings } = this.deps;
    const [staging, production, placeholder, liveBundle] = await Promise.all([
      this.loadStored(spec.name, 'staging'),
      this.loadStored(spec.name, 'production'),
      this.loadStored(spec.name, 'self-signed'),
      // Files deleted from live/ by hand (the LXD habit: remove the old
      // certificate to get a new one) read as missing; the decision below
      // then restores or re-issues it.
      this.deps.live.read(spec.name).catch((err: unknown) => {
        this.deps.log.warn('live/ is incomplete; treating it as missing', {
          cert: spec.name,
          error: errorMessage(err),
        });
        return undefined;
      }),
    ]);
    let live: LiveFacts | undefined;
    if (liveBundle) {
      const leaf = new X509Certificate(liveBundle.cert);
      const serial = leaf.serialNumber.toUpperCase();
      const known = [production, staging, placeholder].find((c) => c?.meta.serial === serial);
      live = {
        serial,
        notBefore: new Date(leaf.validFrom).toISOString(),
        notAfter: new Date(leaf.validTo).toISOString(),
        phase: known?.meta.phase ?? 'foreign',
      };
    }
    return {
      name: spec.name,
      domains: [...spec.domains].sort(),
      target: settings.target,
      keyType: settings.keyType,
      directories: settings.directories,
      ...(settings.renewBeforeDays !== undefined && { renewBeforeDays: settings.renewBeforeDays }),
      stored: {
        ...(staging && { staging: staging.meta }),
        ...(production && { production: production.meta }),
      },
      ...(live && { live }),
    };
  }

  /** Carries out one step; returns the certificate if live/ changed. */
  private async act(
    spec: CertSpec,
    action: Action,
    log: Logger,
    signal?: AbortSignal,
  ): Promise<StoredCert | undefined> {
    const { store, live, issuers, clock, settings } = this.deps;
    switch (action.kind) {
      case 'none':
        return undefined;
      case 'placeholder': {
        const bundle = await issuers['self-signed'].issue(spec, settings.keyType);
        const meta = this.describe(spec, bundle, 'self-signed', '');
        await store.store(storedKey(spec.name, 'self-signed'), JSON.stringify({ meta, bundle }), {
          secret: true,
        });
        await live.write(spec.name, bundle);
        log.info('self-signed placeholder written', {
          reason: action.reason,
          phase: 'self-signed',
        });
        return { meta, bundle };
      }
      case 'issue': {
        const issuer = issuers[action.phase];
        const started = clock.now().getTime();
        const budget = this.deps.budget;
        await budget?.beforeOrder(action.phase, issuer.directoryUrl, spec.domains);
        log.info('ordering certificate', { phase: action.phase, reason: action.reason });
        let bundle: CertBundle;
        try {
          bundle = await issuer.issue(spec, settings.keyType, signal);
        } catch (err) {
          await budget?.afterOrder(action.phase, issuer.directoryUrl, spec.domains, err);
          throw err;
        }
        await budget?.afterOrder(action.phase, issuer.directoryUrl, spec.domains, 'issued');
        const meta = this.describe(spec, bundle, action.phase, issuer.directoryUrl);
        if (!meta.chainVerified) {
          throw new SidecarError('CHAIN_INVALID', 'the CA returned a chain that does not verify');
        }
        const missing = spec.domains.filter((d) => !meta.domains.includes(d));
        if (missing.length) {
          throw new SidecarError('CHAIN_INVALID', `the certificate lacks ${missing.join(', ')}`);
        }
        await store.store(storedKey(spec.name, action.phase), JSON.stringify({ meta, bundle }), {
          secret: true,
        });
        log.info('certificate issued', {
          phase: action.phase,
          reason: action.reason,
          serial: meta.serial,
          notAfter: meta.notAfter,
          ms: clock.now().getTime() - started,
        });
        return undefined;
      }
      case 'deploy': {
        const stored = await this.loadStored(spec.name, action.phase);
        if (!stored) return undefined;
        await live.write(spec.name, stored.bundle);
        log.info('certificate deployed', {
          phase: action.phase,
          reason: action.reason,
          serial: stored.meta.serial,
        });
        return stored;
      }
    }
  }

  /**
   * Makes the platform hold what nginx serves here (see
   * lifecycle/platform-policy.ts for when it does not).
   */
  private async syncPlatform(spec: CertSpec, log: Logger): Promise<void> {
    const { platform, clock } = this.deps;
    if (!platform.holdsCertificates) return;
    const [facts, copy, records] = await Promise.all([
      this.gather(spec),
      platform.read(spec.name),
      this.loadAll(spec.name),
    ]);
    const serials = Object.fromEntries(
      Object.entries(records).map(([phase, r]) => [phase, r?.meta.serial]),
    ) as Partial<Record<Phase, string>>;
    const action = decidePlatform(
      { ...(facts.live && { live: facts.live }), ...(copy && { copy }), serials },
      clock.now(),
    );
    if (action.kind === 'none') return;
    if (action.kind === 'conflict') {
      throw new SidecarError(
        'PLATFORM_CONFLICT',
        `${platform.name} already has a certificate named ${spec.name} that acme-sidecar did not create; not overwriting it`,
      );
    }
    const phase = facts.live?.phase;
    const record = phase && phase !== 'foreign' ? records[phase] : undefined;
    if (!record) return;
    log.info('pushing certificate to the platform', {
      platform: platform.name,
      reason: action.reason,
      phase: record.meta.phase,
      serial: record.meta.serial,
    });
    await platform.push(record, copy);
  }

  /**
   * The store holds nothing for this certificate but the platform holds a
   * valid one of ours: the local volume was lost. Cattle never returns a
   * private key after create, so a new certificate must be issued; say so.
   */
  private async noteLostLocalCopy(spec: CertSpec, log: Logger): Promise<void> {
    const { platform, clock } = this.deps;
    if (!platform.holdsCertificates || this.status.get(spec.name)?.attempts) return;
    const records = await this.loadAll(spec.name);
    if (Object.values(records).some(Boolean)) return;
    const copy = await platform.read(spec.name);
    if (copy?.ours && (!copy.notAfter || clock.now() < new Date(copy.notAfter))) {
      log.warn(
        'local copy lost: the platform holds a valid certificate of ours, but its private key cannot be read back from it; issuing a new certificate',
        { reason: ReconcileReason.LocalLost, serial: copy.serial, platform: platform.name },
      );
    }
  }

  private async loadAll(name: string): Promise<Partial<Record<Phase, StoredCert>>> {
    const [selfSigned, staging, production] = await Promise.all(
      PHASES.map((p) => this.loadStored(name, p)),
    );
    return {
      ...(selfSigned && { 'self-signed': selfSigned }),
      ...(staging && { staging }),
      ...(production && { production }),
    };
  }

  private describe(spec: CertSpec, bundle: CertBundle, phase: Phase, directoryUrl: string) {
    return describeBundle(bundle, {
      name: spec.name,
      phase,
      directoryUrl,
      keyType: this.deps.settings.keyType,
      issuedAt: this.deps.clock.now(),
    });
  }

  /** Updates the status with what nginx serves now. */
  private async refreshLive(spec: CertSpec, st: CertStatus): Promise<void> {
    try {
      const facts = await this.gather(spec);
      const live = facts.live;
      st.phase = live?.phase ?? 'none';
      if (live) {
        st.notBefore = live.notBefore;
        st.notAfter = live.notAfter;
        st.serial = live.serial;
      }
      // Steady (nothing left to do), serving a CA-issued certificate, and
      // the pass (platform push included) ended without an error.
      st.ready =
        (live?.phase === 'staging' || live?.phase === 'production') &&
        decide(facts, this.deps.clock.now()).kind === 'none' &&
        st.lastError === undefined;
    } catch {
      st.ready = false;
    }
  }
}

function sameAction(a: Action, b: Action): boolean {
  const phase = (x: Action) => ('phase' in x ? x.phase : undefined);
  return a.kind === b.kind && phase(a) === phase(b);
}
