import { SidecarError } from '../domain/errors.js';
import type { CertStatus } from '../domain/status.js';
import { withDefaultProfile } from '../domain/profiles.js';
import { PHASES, type CertMeta, type CertSpec, type StoredCert } from '../domain/types.js';
import { certificateEvent } from '../hooks/hooks.js';
import {
  decide,
  renewBeforeWarning,
  type Action,
  type CertFacts,
  type LiveFacts,
} from '../lifecycle/policy.js';
import type { PlatformAction, PlatformFacts } from '../lifecycle/platform-policy.js';
import { ReconcileReason, Reason } from '../lifecycle/reasons.js';
import { certLockName, storedKey } from '../store/keys.js';
import { CertActions } from './actions.js';
import { AriTracker, type AriView } from './ari.js';
import { DEFAULT_CONCURRENCY } from '../domain/types.js';
import type { ReconcilerDeps } from './deps.js';
import { RecordReader } from '../store/records.js';
import { CertRecords, serialsOf } from './records.js';
import { RetrySchedule } from './retry-schedule.js';
import { SteadyTracker } from './steady.js';
import { span } from '../util/durations.js';
import { lazyChild, type Logger } from '../util/log.js';

export type { ReconcilerDeps, ReconcilerSettings } from './deps.js';

/** Steps one certificate may take in one pass before it counts as not settling. */
export const MAX_STEPS = 8;

/**
 * Drives each certificate through the lifecycle: gather facts (records.ts),
 * decide (pure, in lifecycle/), and act (actions.ts); one step at a time
 * until nothing is left to do or a step fails. A failure is recorded on that
 * certificate and backed off (retry-schedule.ts); it never stops the others.
 */
export class Reconciler {
  readonly status = new Map<string, CertStatus>();
  private readonly records: CertRecords;
  private readonly actions: CertActions;
  private readonly retries: RetrySchedule;
  private readonly ari: AriTracker;
  private readonly steady: SteadyTracker;
  /** Certificate name -> the serial last checked (and warned if need be) for RENEW_BEFORE_DAYS. */
  private readonly renewBeforeWarned = new Map<string, string>();

  private readonly reader: RecordReader;
  private readonly planRecords: CertRecords;

  constructor(private readonly deps: ReconcilerDeps) {
    this.reader = deps.records ?? new RecordReader(deps.store, deps.clock, deps.log);
    this.records = new CertRecords(deps, this.reader);
    this.planRecords = new CertRecords(
      deps,
      new RecordReader(deps.store, deps.clock, deps.log, { dryRun: true }),
    );
    this.actions = new CertActions(deps, this.records);
    this.retries = new RetrySchedule(deps, this.reader);
    this.ari = new AriTracker(deps, this.records);
    this.steady = new SteadyTracker(deps);
  }

  /** One pass over every wanted certificate. */
  async reconcileAll(specs: readonly CertSpec[], signal?: AbortSignal): Promise<CertStatus[]> {
    const wanted = new Set(specs.map((s) => s.name));
    // What is kept per certificate across passes goes with it.
    for (const map of [this.status, this.renewBeforeWarned]) {
      for (const name of map.keys()) if (!wanted.has(name)) map.delete(name);
    }
    this.ari.retain(wanted);
    this.actions.retain(wanted);
    this.steady.retain(wanted);
    // An index, not a queue shifted 1000 times per pass.
    let next = 0;
    const workers = Array.from(
      { length: Math.min(this.deps.settings.concurrency ?? DEFAULT_CONCURRENCY, specs.length) },
      async () => {
        for (let spec = specs[next++]; spec; spec = specs[next++]) {
          if (signal?.aborted) return;
          // reconcileOne, with the idle shortcut checked in place: a
          // certificate that holds costs no promise (an idle pass is 1000).
          const one = this.shortcut(spec, false);
          if (one.holds === true || (one.holds !== false && (await one.holds))) continue;
          await this.reconcileFull(one.spec, one.st, signal, {});
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
    const one = this.shortcut(spec, opts.force === true);
    if (one.holds === true || (one.holds !== false && (await one.holds))) return one.st;
    return this.reconcileFull(one.spec, one.st, signal, opts);
  }

  /**
   * `spec` with its profile, its status, and whether the idle shortcut
   * holds: settled, nothing changed, no deadline come, so a full pass would
   * decide the same (steady.ts). Synchronous when the answer is at hand.
   */
  private shortcut(
    spec: CertSpec,
    force: boolean,
  ): { spec: CertSpec; st: CertStatus; holds: boolean | Promise<boolean> } {
    const withProfile = withDefaultProfile(spec, this.deps.settings.profile);
    const st = this.statusOf(withProfile);
    return {
      spec: withProfile,
      st,
      holds: this.steady.holds(withProfile, this.deps.clock.now(), force),
    };
  }

  /** reconcileOne past the idle shortcut (`spec` with its profile, `st` its status). */
  private async reconcileFull(
    spec: CertSpec,
    st: CertStatus,
    signal: AbortSignal | undefined,
    opts: { force?: boolean },
  ): Promise<CertStatus> {
    const { clock, log: rootLog } = this.deps;
    const log = lazyChild(rootLog, { cert: spec.name, domains: spec.domains });
    await this.retries.load(st, spec);
    if (!opts.force && st.nextRetry && clock.now() < new Date(st.nextRetry)) {
      st.reason = ReconcileReason.Backoff;
      return st;
    }
    // A forced renewal is spent by the first order from the target CA.
    let force = opts.force === true;
    /** What this pass did that heals a lost record (for the status). */
    let healed: CertStatus['recovered'];
    /** A step was taken (under the lock): what was gathered before it is stale. */
    let acted = false;
    /** This pass ordered the target phase's certificate. */
    let issued = false;
    /** The facts of the last decision, while nothing was done since (and the decision, unforced). */
    let steady: { facts: CertFacts; action?: Action } | undefined;
    /** For the idle shortcut: what the ARI refresh and the last decision were made on. */
    let seen: { ari: AriView; after?: unknown[]; platform?: PlatformFacts } | undefined;
    const tracking = this.steady.enabled && !opts.force;
    try {
      const ariView = await this.ari.refresh(spec, log);
      noteAri(st, ariView);
      if (tracking) seen = { ari: ariView };
      if (this.deps.platform.holdsCertificates && !st.attempts) {
        await this.actions.noteLostLocalCopy(spec, log);
      }
      for (let step = 0; step < MAX_STEPS; step++) {
        if (signal?.aborted) throw new SidecarError('ABORTED', 'shutting down');
        const facts = await this.gather(spec);
        const action = decide({ ...facts, force }, clock.now());
        if (action.kind === 'none') {
          if (seen) {
            seen.after = await this.steady.inputs(spec.name, SteadyTracker.keys(spec.name));
          }
          // The platform holds nothing the store or live/ depend on: these
          // facts still hold after the push, for the status below.
          const plan = await this.actions.syncPlatform(spec, log, facts);
          if (seen && plan) {
            seen.platform = {
              ...(plan.facts.live && { live: plan.facts.live }),
              ...(plan.copy && { copy: plan.copy }),
              serials: serialsOf(plan.records),
            };
            if (plan.action.kind !== 'none') seen = undefined;
          }
          await this.settle(st, action);
          steady = { facts, ...(!force && { action }) };
          return st;
        }
        st.reason = action.reason;
        let deployed: StoredCert | undefined;
        acted = true;
        await this.withLock(spec.name, async () => {
          // Someone may have done the work while we waited for the lock.
          const again = decide(
            { ...(await this.records.gather(spec, { fresh: true })), force },
            clock.now(),
          );
          if (sameAction(again, action)) {
            deployed = await this.actions.act(spec, again, log, signal);
          }
        });
        if (action.kind === 'adopt') healed = 'adopted';
        else if (action.kind === 'issue' && healed === undefined) healed = 'reissued';
        if (deployed) {
          st.deployedAt = clock.now().toISOString();
          noteDeployed(st, deployed.meta);
          // Outside the lock; never throws, bounded by its timeouts.
          await this.deps.hooks?.run(
            certificateEvent(deployed.meta, this.deps.live.path(spec.name)),
            deployed.bundle,
          );
        }
        if (action.kind === 'issue' && action.phase === this.deps.settings.target) {
          force = false;
          issued = true;
        }
      }
      // Not shutdown: a certificate that does not settle is a failure like
      // any other, counted and backed off.
      throw new SidecarError(
        'NO_STEADY_STATE',
        `no steady state after ${MAX_STEPS} steps (last: ${st.reason})`,
        { retryable: true },
      );
    } catch (err) {
      await this.retries.fail(st, err, log, spec);
      return st;
    } finally {
      // After a step (not while shutting down): a certificate this pass
      // issued is not asked about yet, only given its first check time (at
      // most 6 h away, AriTracker); one adopted or changed otherwise is
      // asked now; one left as it was was asked above.
      if (acted && !signal?.aborted) noteAri(st, await this.ari.refresh(spec, log, { issued }));
      await this.refreshLive(spec, st, log, acted ? undefined : steady);
      this.noteLocalState(st, healed);
      if (
        seen?.after &&
        !acted &&
        steady?.action &&
        !seen.ari.failed &&
        st.ready &&
        st.lastError === undefined &&
        st.localState === undefined &&
        !signal?.aborted
      ) {
        // Only an optimisation: if its inputs cannot be read now, the
        // certificate simply gets no mark (reconcileOne never throws).
        try {
          await this.steady.settled(spec, clock.now(), {
            facts: steady.facts,
            action: steady.action,
            ...(seen.platform && { platform: seen.platform }),
            ariQuietUntil: await this.ari.quietUntil(spec),
            after: seen.after,
          });
        } catch {
          this.steady.clear(spec.name);
        }
      } else if (tracking || opts.force) {
        this.steady.clear(spec.name);
      }
    }
  }

  /**
   * What the next pass would do for `spec`, changing nothing: the lifecycle
   * decision and, once that is steady, the platform decision.
   */
  async plan(spec: CertSpec): Promise<{ action: Action; platform?: PlatformAction }> {
    spec = withDefaultProfile(spec, this.deps.settings.profile);
    // Changes nothing: a corrupt record is only named, not kept aside.
    const facts = await this.planRecords.gather(spec);
    const action = decide(facts, this.deps.clock.now());
    if (action.kind !== 'none' || !this.deps.platform.holdsCertificates) return { action };
    return { action, platform: (await this.actions.platformPlan(spec, facts)).action };
  }

  /** The facts a decision needs, read fresh from the store and live/. */
  gather(spec: CertSpec): Promise<CertFacts> {
    return this.records.gather(spec);
  }

  private statusOf(spec: CertSpec): CertStatus {
    let st = this.status.get(spec.name);
    // Other hostnames or another profile: a fresh start, backoff included.
    if (!st || !sameList(st.domains, spec.domains) || st.profile !== spec.profile) {
      st = {
        name: spec.name,
        domains: spec.domains,
        ...(spec.profile !== undefined && { profile: spec.profile }),
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
    const cleared = this.retries.clear(st);
    if (action.renewAt) st.renewAt = action.renewAt.toISOString();
    if (action.renewAt) st.renewSource = action.renewSource ?? 'lifetime';
    return cleared;
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

  /**
   * Warns once per certificate (serial) when RENEW_BEFORE_DAYS does not apply
   * as set to the target CA's certificate: capped at half its lifetime, or at
   * or above the whole lifetime (lifecycle/policy.ts renewBeforeFor).
   */
  private warnRenewBefore(facts: CertFacts, log: Logger): void {
    const meta = facts.stored[facts.target];
    if (!meta) return;
    if (this.renewBeforeWarned.get(facts.name) === meta.serial) return;
    // Checked once per serial (RENEW_BEFORE_DAYS does not change while running), warned or not.
    this.renewBeforeWarned.set(facts.name, meta.serial);
    const w = renewBeforeWarning(meta, facts.renewBeforeDays);
    if (!w) return;
    log.warn(w.message, {
      phase: facts.target,
      serial: meta.serial,
      lifetime: span(w.lifetimeS),
      lifetimeSeconds: w.lifetimeS,
      renewBeforeDays: w.renewBeforeDays,
      renewsBeforeExpirySeconds: w.usedS,
    });
  }

  /**
   * Records of this certificate found corrupt in this pass go on its status
   * (kept until a later pass finds others), with how the pass healed them.
   */
  private noteLocalState(st: CertStatus, healed: CertStatus['recovered']): void {
    const found = this.reader.take(st.name);
    if (found.length === 0) return;
    st.localState = found;
    const certRecords = PHASES.map((p) => storedKey(st.name, p));
    const lostCert = found.some((p) => certRecords.includes(p.record));
    if (healed && (healed === 'adopted' || lostCert)) st.recovered = healed;
    else delete st.recovered;
  }

  /**
   * Updates the status with what nginx serves now (`known`: facts gathered
   * since the last change, and the decision made on them, not made again).
   */
  private async refreshLive(
    spec: CertSpec,
    st: CertStatus,
    log: Logger,
    known?: { facts: CertFacts; action?: Action },
  ): Promise<void> {
    try {
      const facts = known?.facts ?? (await this.gather(spec));
      this.warnRenewBefore(facts, log);
      const live = facts.live;
      if (live) noteServed(st, live);
      else st.phase = 'none';
      // Steady (nothing left to do), serving a CA-issued certificate, and
      // the pass (platform push included) ended without an error.
      const action = known?.action ?? decide(facts, this.deps.clock.now());
      // The renewal time as it stands after this pass (a certificate issued
      // in it has its own, and its ARI window may have come since).
      if (action.kind === 'none' && action.renewAt) {
        st.renewAt = action.renewAt.toISOString();
        st.renewSource = action.renewSource ?? 'lifetime';
      }
      st.ready =
        (live?.phase === 'staging' || live?.phase === 'production') &&
        action.kind === 'none' &&
        st.lastError === undefined;
    } catch {
      st.ready = false;
    }
  }
}

/** What the status shows of the certificate live/ serves. */
function noteServed(
  st: CertStatus,
  live: Pick<LiveFacts, 'phase' | 'notBefore' | 'notAfter' | 'serial'>,
): void {
  st.phase = live.phase;
  st.notBefore = live.notBefore;
  st.notAfter = live.notAfter;
  st.serial = live.serial;
}

/**
 * A certificate deployed in the pass, for a status read before it ends:
 * what nginx serves now. The renewal time and the CA's renewal information
 * were about the one it replaced (the end of the pass sets this one's); a
 * placeholder is not ready.
 */
function noteDeployed(st: CertStatus, meta: CertMeta): void {
  noteServed(st, meta);
  delete st.renewAt;
  delete st.renewSource;
  delete st.explanationUrl;
  delete st.ariCheckAt;
  if (meta.phase === 'self-signed') st.ready = false;
}

/** What the status shows of the CA's renewal information. */
function noteAri(st: CertStatus, { record, checkAt }: AriView): void {
  if (record?.explanationUrl) st.explanationUrl = record.explanationUrl;
  else delete st.explanationUrl;
  if (checkAt) st.ariCheckAt = checkAt;
  else delete st.ariCheckAt;
}

function sameAction(a: Action, b: Action): boolean {
  const phase = (x: Action) => ('phase' in x ? x.phase : undefined);
  return a.kind === b.kind && phase(a) === phase(b);
}

/** Same strings in the same order (no joined copies: it runs for every certificate every pass). */
function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
