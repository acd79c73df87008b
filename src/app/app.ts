/**
 * The application, built from parts the composition root (main.ts) wired:
 * what `acme-sidecar run`, `once`, `once --dry-run` and `check-config` do.
 */
import { reconcilerHandlers } from '../control/handlers.js';
import { ControlHandlerError } from '../control/protocol.js';
import { challengeFor } from '../domain/challenges.js';
import type { PersistRecordStatus } from '../domain/dns-persist.js';
import { errorMessage } from '../domain/errors.js';
import type { AcmePhase } from '../domain/types.js';
import type { CertStatus, StatusSnapshot } from '../domain/status.js';
import { buildStatusSnapshot } from '../http/status.js';
import type { Clock } from '../lifecycle/clock.js';
import type { MetricsSink } from '../metrics/deferred-metrics.js';
import type { Platform } from '../platform/platform.js';
import type { Discoverer } from '../reconcile/discoverer.js';
import type { Reconciler } from '../reconcile/reconciler.js';
import type { Logger } from '../util/log.js';
import { checkConfig, type CheckConfigDeps, type CheckLine } from './check-config.js';
import type { Coordination } from './coordination.js';
import type { DaemonDeps, DaemonSettings } from './daemon.js';
import { readiness } from './health.js';
import { noCertificatesHint, PassRunner, type PassDeps, type PassResult } from './pass.js';
import { plan, type Plan } from './plan.js';

export type { CheckLine } from './check-config.js';
export type { PassResult } from './pass.js';
export type { PlanLine } from './plan.js';

export interface App {
  /** `acme-sidecar check-config`: reach the CA, the platform and nginx, and say what is wrong. */
  checkConfig(): Promise<CheckLine[]>;
  /** Discover and decide, changing nothing (`acme-sidecar once --dry-run`). */
  plan(): Promise<Plan>;
  readonly reconciler: Reconciler;
  readonly metrics: MetricsSink;
  /** What /status serves. */
  snapshot(): StatusSnapshot;
  /** Discover, then reconcile every certificate once. Never throws. */
  pass(signal?: AbortSignal): Promise<PassResult>;
  /** Runs until SIGTERM/SIGINT (or `stop()`); resolves when shut down cleanly. */
  runDaemon(): Promise<void>;
  stop(): void;
}

export interface AppParts {
  readonly settings: DaemonSettings & {
    readonly target: AcmePhase;
    /** `RENEW_COOLDOWN` in seconds; default 600. */
    readonly renewCooldownSeconds?: number;
    /** `MAX_CONCURRENT_ORDERS`: certificates `renew --all` works on at once. */
    readonly concurrency?: number;
  };
  readonly platform: Platform;
  readonly discoverer: Discoverer;
  readonly reconciler: Reconciler;
  readonly metrics: MetricsSink;
  readonly coordination: Coordination;
  readonly probeStore: PassDeps['probeStore'];
  readonly storeView?: PassDeps['storeView'];
  readonly sweepers: PassDeps['sweepers'];
  /** The daemon's watches that keep records and live/ across passes (daemon.ts). */
  readonly liveFeed?: DaemonDeps['liveFeed'];
  readonly watchStore?: DaemonDeps['watchStore'];
  readonly deployCheckEndpoints?: PassDeps['deployCheckEndpoints'];
  readonly checks: Omit<CheckConfigDeps, 'platform'>;
  /**
   * dns-persist-01: the records these names need at the target CA(s)
   * (account URL and issuer domain name from the CA). Asked after each pass.
   */
  readonly persistRecords?: (domains: readonly string[]) => Promise<readonly PersistRecordStatus[]>;
  /** Last of shutdown. */
  readonly cleanup: () => Promise<void>;
  readonly clock: Clock;
  readonly log: Logger;
}

export function createApp(parts: AppParts): App {
  const { settings, platform, reconciler, metrics, coordination, clock, log } = parts;
  const controller = new AbortController();
  const passes = new PassRunner({
    discoverer: parts.discoverer,
    reconcileAll: (specs, signal) => reconciler.reconcileAll(specs, signal),
    platform,
    ...(parts.storeView && { storeView: parts.storeView }),
    probeStore: parts.probeStore,
    sweepers: parts.sweepers,
    ...(parts.deployCheckEndpoints && { deployCheckEndpoints: parts.deployCheckEndpoints }),
    coordination,
    noCertificatesHint: noCertificatesHint(platform.name),
    clock,
    log,
  });

  /**
   * The node that acts reports its reconciler's view; a cluster replica
   * that does not reports what its own live/ serves.
   */
  const certificates = (): CertStatus[] =>
    coordination.servedCertificates(settings.target) ?? [...reconciler.status.values()];

  // dns-persist-01: what /status shows, refreshed after each pass (the CA
  // and account are asked, not guessed; a failure keeps the last view).
  let persistView: readonly PersistRecordStatus[] = [];
  const setting = parts.checks.challenge ?? 'http-01';
  const refreshPersist = async (): Promise<void> => {
    if (!parts.persistRecords) return;
    const domains = (passes.lastSpecs ?? [])
      .filter((s) => challengeFor(s, setting).type === 'dns-persist-01')
      .flatMap((s) => s.domains);
    try {
      persistView = domains.length > 0 ? await parts.persistRecords(domains) : [];
    } catch (err) {
      log.warn('cannot tell the dns-persist-01 records for /status', { error: errorMessage(err) });
    }
  };
  const runPass = async (signal?: AbortSignal): Promise<PassResult> => {
    const result = await passes.run(signal);
    await refreshPersist();
    return result;
  };

  const snapshot = (): StatusSnapshot => {
    const cluster = coordination.status();
    return buildStatusSnapshot(
      {
        certificates: certificates(),
        problems: passes.lastProblems,
        target: settings.target,
        platform: platform.name,
        ...(passes.lastPass && { lastPass: passes.lastPass }),
        ...(cluster && { cluster }),
        ...(persistView.length > 0 && { dnsPersist: persistView }),
      },
      clock.now(),
    );
  };

  metrics.observe({
    certificates,
    lastPass: () => passes.lastPass,
    cluster: () => coordination.status(),
  });

  return {
    reconciler,
    metrics,
    pass: runPass,
    plan: () =>
      plan({
        discover: () => parts.discoverer.discover({ persist: false }),
        plan: (spec) => reconciler.plan(spec),
        platformName: platform.name,
      }),
    checkConfig: () => checkConfig({ ...parts.checks, platform }),
    snapshot,
    // The daemon's modules (its servers, scheduler, watches) are loaded by
    // `run` only, not by `once`.
    runDaemon: async () =>
      (await import('./daemon.js')).runDaemon({
        settings,
        coordination,
        // The daemon's metrics are loaded (prom-client) after its first
        // pass, or by the first scrape if that comes sooner: not before
        // the first order.
        pass: async (signal) => {
          try {
            return await runPass(signal);
          } finally {
            // A failed load is tried again, and reported by /metrics.
            metrics.load?.().catch(() => undefined);
          }
        },
        recover: () => passes.recover(),
        dueTimes: () =>
          [...reconciler.status.values()].flatMap((c) => [c.nextRetry, c.renewAt, c.ariCheckAt]),
        controlHandlers: reconcilerHandlers({
          status: snapshot,
          specs: () => passes.lastSpecs,
          reconciler: leaderOnly(coordination, reconciler),
          signal: controller.signal,
          now: () => clock.now(),
          cooldownSeconds: settings.renewCooldownSeconds ?? DEFAULT_RENEW_COOLDOWN_SECONDS,
          ...(settings.concurrency !== undefined && { concurrency: settings.concurrency }),
        }),
        snapshot,
        readiness: () => {
          const follower = coordination.followerReadiness();
          return readiness(
            {
              ...(follower && { follower }),
              ...(passes.lastPass && { lastPass: passes.lastPass }),
              storeOk: passes.storeOk,
              loopTimeSeconds: settings.loopTimeSeconds,
              stateDir: settings.stateDir,
            },
            clock.now(),
          );
        },
        metrics: () => metrics.render(),
        ...(platform.watch && { watchPlatform: (onChange) => platform.watch!(onChange) }),
        ...(parts.liveFeed && { liveFeed: parts.liveFeed }),
        ...(parts.watchStore && { watchStore: parts.watchStore }),
        cleanup: parts.cleanup,
        controller,
        clock,
        log,
      }),
    stop: () => controller.abort(),
  };
}

/** RENEW_COOLDOWN's schema default, for callers (tests) that build settings by hand. */
const DEFAULT_RENEW_COOLDOWN_SECONDS = 600;

/**
 * `acme-sidecar renew` through the control socket: in cluster mode only the
 * leader may order, and only within its term; other replicas say whom to ask.
 */
function leaderOnly(
  coordination: Coordination,
  reconciler: Reconciler,
): Parameters<typeof reconcilerHandlers>[0]['reconciler'] {
  return {
    status: reconciler.status,
    reconcileOne(spec, signal, opts) {
      const term = coordination.term();
      if (!term.mayAct) {
        const leader = coordination.leader();
        throw new ControlHandlerError(
          'UNAVAILABLE',
          `this replica is not the cluster leader${leader ? `; run it on ${leader}` : ''}`,
        );
      }
      const both =
        signal && term.signal ? AbortSignal.any([signal, term.signal]) : (signal ?? term.signal);
      return reconciler.reconcileOne(spec, both, opts);
    },
  };
}
