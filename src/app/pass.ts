/**
 * One pass: discover, reconcile every certificate, make the servers reload,
 * check what the endpoints serve. What the daemon runs on each tick and
 * `acme-sidecar once` runs once.
 */
import { checkDeployment, type Endpoint } from '../deploy/deployment-check.js';
import { errorCode, errorMessage } from '../domain/errors.js';
import type { CertSpec } from '../domain/types.js';
import type { Clock } from '../lifecycle/clock.js';
import { deploymentStale } from '../lifecycle/deployment.js';
import type { DiscoveryProblem } from '../platform/platform.js';
import type { Discoverer } from '../reconcile/discoverer.js';
import type { CertStatus, LastPass } from '../domain/status.js';
import type { Logger } from '../util/log.js';
import { pemPool } from '../util/pem-pool.js';
import type { Coordination } from './coordination.js';

/** Longer than the nginx-side watcher's reload interval (10 s). */
const DEPLOY_CHECK_GRACE_MS = 60_000;

export interface PassResult {
  readonly certificates: CertStatus[];
  readonly problems: readonly DiscoveryProblem[];
  /** Discovery failed and the last known set was used. */
  readonly discoveryError?: string;
}

export interface PassDeps {
  readonly discoverer: Pick<Discoverer, 'discover'>;
  readonly reconcileAll: (
    specs: readonly CertSpec[],
    signal?: AbortSignal,
  ) => Promise<CertStatus[]>;
  readonly platform: {
    readonly name: string;
    /** Servers that read live/ themselves (Docker's nginx) reload. */
    reload?(served: { name: string; serial: string }[]): Promise<void>;
    /** Around each pass: a platform may read its collections once per pass (Platform). */
    beginPass?(): void;
    endPass?(): void;
  };
  /**
   * The store's view for one pass (store/pass-cache.ts): each record read
   * at most once per pass; `reads` counts the loads that reached the store.
   */
  readonly storeView?: { begin(): void | Promise<void>; end(): void; readonly reads: number };
  /** Is the store readable? (readiness) */
  readonly probeStore: () => Promise<unknown>;
  /** Each clears what a killed run left (temp files), returning what it removed. */
  readonly sweepers: readonly (() => Promise<string[]>)[];
  readonly deployCheckEndpoints?: readonly Endpoint[];
  readonly coordination: Coordination;
  /** Said when nothing is configured: how to configure this platform. */
  readonly noCertificatesHint: string;
  readonly clock: Clock;
  readonly log: Logger;
}

/** The warning for an empty configuration, per platform. */
export function noCertificatesHint(platform: string): string {
  if (platform === 'rancher') {
    return 'no certificates configured: set DOMAINS or label services with io.acme-sidecar.domains';
  }
  if (platform === 'docker') {
    return 'no certificates configured: set DOMAINS or label containers with io.acme-sidecar.domains';
  }
  return 'no certificates configured: set DOMAINS, e.g. DOMAINS=www.example.com';
}

/** Runs passes and remembers what the last one found (for /status, readiness and `renew`). */
export class PassRunner {
  lastPass: LastPass | undefined;
  lastProblems: readonly DiscoveryProblem[] = [];
  /** The certificates of the last discovery (the last known set when it failed); for `renew`. */
  lastSpecs: readonly CertSpec[] | undefined;
  storeOk = true;
  private recovered = false;

  constructor(private readonly deps: PassDeps) {}

  /** Once per process, before the first pass: clear what a killed run left. */
  async recover(): Promise<void> {
    if (this.recovered) return;
    this.recovered = true;
    const removed: string[] = [];
    for (const sweep of this.deps.sweepers) removed.push(...(await sweep()));
    if (removed.length)
      this.deps.log.info('removed what an interrupted run left behind', { removed });
  }

  /** Discover, then reconcile every certificate once. Never throws. */
  async run(signal?: AbortSignal): Promise<PassResult> {
    const { deps } = this;
    const { clock } = deps;
    // Cluster mode: only the elected leader acts (`acme-sidecar once` does not campaign).
    if (!deps.coordination.term().mayAct) {
      const leader = deps.coordination.leader();
      return {
        certificates: [],
        problems: [],
        discoveryError: `CLUSTER_NOT_LEADER: in cluster mode only the elected leader orders and renews${leader ? ` (now ${leader})` : ''}; run acme-sidecar run on every node`,
      };
    }
    await this.recover();
    const startedAt = clock.now().toISOString();
    const cpuAtStart = process.cpuUsage();
    const readsAtStart = deps.storeView?.reads;
    deps.platform.beginPass?.();
    try {
      // Records and live/ bundles are kept across passes while a file watch
      // vouches for them (store/pass-cache.ts, deploy/live-dir.ts): the
      // changes the OS queued before this pass reach the watches first.
      // Two turns: from an I/O callback, the first check phase precedes the next poll.
      await new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
      await deps.storeView?.begin();
      return await this.runScoped(startedAt, cpuAtStart, readsAtStart, signal);
    } finally {
      deps.platform.endPass?.();
      deps.storeView?.end();
      pemPool.clear();
    }
  }

  private async runScoped(
    startedAt: string,
    cpuAtStart: NodeJS.CpuUsage,
    readsAtStart: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<PassResult> {
    const { deps } = this;
    const { log, clock } = deps;
    const found = await deps.discoverer.discover();
    this.lastSpecs = found.specs;
    if (found.specs.length === 0 && found.problems.length === 0 && !found.error) {
      log.warn(deps.noCertificatesHint);
    }
    const certificates = await deps.reconcileAll(found.specs, signal);
    // Servers that read live/ themselves (Docker's nginx) reload before the deployment check.
    await deps.platform
      .reload?.(
        certificates.flatMap((c) =>
          c.serial && c.phase !== 'none' ? [{ name: c.name, serial: c.serial }] : [],
        ),
      )
      .catch((err: unknown) =>
        log.warn(
          'could not make the servers reload their certificates; retrying at the next pass',
          { code: errorCode(err), error: errorMessage(err) },
        ),
      );
    if (deps.deployCheckEndpoints) {
      await checkDeployments(certificates, deps.deployCheckEndpoints, clock, log);
    }
    this.storeOk = await deps.probeStore().then(
      () => true,
      () => false,
    );
    const discoveryError = found.error && `${found.error.code}: ${found.error.message}`;
    this.lastProblems = found.problems;
    this.lastPass = {
      startedAt,
      finishedAt: clock.now().toISOString(),
      ok: !discoveryError && found.problems.length === 0 && certificates.every((c) => c.ready),
      ...(discoveryError && { discoveryError }),
      cpuSeconds: cpuSecondsSince(cpuAtStart),
      ...(deps.storeView &&
        readsAtStart !== undefined && { storeReads: deps.storeView.reads - readsAtStart }),
    };
    log.debug('pass finished', {
      certificates: certificates.length,
      ms: new Date(this.lastPass.finishedAt).getTime() - new Date(startedAt).getTime(),
      cpuSeconds: this.lastPass.cpuSeconds,
      ...(this.lastPass.storeReads !== undefined && { storeReads: this.lastPass.storeReads }),
    });
    return { certificates, problems: found.problems, ...(discoveryError && { discoveryError }) };
  }
}

/** Process CPU (user + system) since `start`, in seconds, to the microsecond. */
export function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1e6;
}

/** "Renewed but never reloaded": is every endpoint serving the certificate in live/? */
async function checkDeployments(
  certificates: readonly CertStatus[],
  endpoints: readonly Endpoint[],
  clock: Clock,
  log: Logger,
): Promise<void> {
  await Promise.all(
    certificates.map(async (c) => {
      const servername = c.domains[0];
      if (!c.serial || !servername || c.phase === 'none') return;
      const checks = await checkDeployment({ endpoints, servername, expectedSerial: c.serial });
      const now = clock.now();
      const stale = deploymentStale(
        checks.map((x) => x.state),
        c.deployedAt ? new Date(c.deployedAt) : undefined,
        now,
        DEPLOY_CHECK_GRACE_MS,
      );
      c.deployment = { checkedAt: now.toISOString(), stale, endpoints: checks };
      if (stale) {
        log.warn('an endpoint still serves an older certificate (renewed but not reloaded?)', {
          cert: c.name,
          serial: c.serial,
          endpoints: checks
            .filter((x) => x.state === 'stale')
            .map((x) => `${x.endpoint} serves ${x.servedSerial}`),
        });
      }
      for (const x of checks.filter((x) => x.state === 'unreachable')) {
        log.warn('deployment check could not reach an endpoint', {
          cert: c.name,
          endpoint: x.endpoint,
          error: x.error,
        });
      }
    }),
  );
}
