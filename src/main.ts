/**
 * The composition root: the only module that knows every concrete class.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import chokidar from 'chokidar';
import { errorCode, errorMessage } from './domain/errors.js';
import type { CertSpec } from './domain/types.js';
import { join } from 'node:path';
import cron from 'node-cron';
import { AcmeIssuer } from './acme/acme-issuer.js';
import { configureAcmeHttp, onAcmeRequest } from './acme/http.js';
import { probeDirectory } from './acme/probe.js';
import { startHttpServer } from './http/server.js';
import { buildStatusSnapshot } from './http/status.js';
import type { CertStatus, DiscoveryProblem, LastPass, StatusSnapshot } from './domain/status.js';
import { Metrics } from './metrics/metrics.js';
import { checkDeployment } from './deploy/deployment-check.js';
import { HookRunner } from './hooks/hooks.js';
import { deploymentStale } from './lifecycle/deployment.js';
import { Reason } from './lifecycle/reasons.js';
import { wakeupMs } from './lifecycle/policy.js';

import { SelfSignedIssuer } from './acme/self-signed-issuer.js';
import { WebrootResponder } from './challenge/webroot-responder.js';
import type { Config } from './config/schema.js';
import { reconcilerHandlers } from './control/handlers.js';
import { CONTROL_SOCKET_NAME } from './control/protocol.js';
import { startControlServer } from './control/server.js';
import { ControlHandlerError } from './control/protocol.js';
import { LiveDir } from './deploy/live-dir.js';
import { systemClock, type Clock } from './lifecycle/clock.js';
import type { Platform } from './platform/platform.js';
import { StaticPlatform } from './platform/static-platform.js';
import { CattleClient } from './platform/rancher/cattle-client.js';
import { RancherPlatform } from './platform/rancher/rancher-platform.js';
import { DockerEngineClient } from './platform/docker/engine-client.js';
import { DockerPlatform } from './platform/docker/docker-platform.js';
import { RateBudget } from './reconcile/budget.js';
import { Discoverer } from './reconcile/discoverer.js';
import { Reconciler } from './reconcile/reconciler.js';
import { FsCertStore } from './store/fs-store.js';
import { createEtcdStore } from './store/etcd-store.js';
import { Cluster } from './cluster/cluster.js';
import type { CertStore } from './store/store.js';
import type { ChallengeResponder } from './challenge/responder.js';
import { TEMP_MARKER } from './store/atomic.js';
import type { Logger } from './util/log.js';

/** Longer than the nginx-side watcher's reload interval (10 s). */
const DEPLOY_CHECK_GRACE_MS = 60_000;

export interface PassResult {
  readonly certificates: CertStatus[];
  readonly problems: readonly DiscoveryProblem[];
  /** Discovery failed and the last known set was used. */
  readonly discoveryError?: string;
}

export interface PlanLine {
  readonly name: string;
  readonly domains: readonly string[];
  /** Plain words: what the next pass would do and why. */
  readonly would: string;
}

export interface CheckLine {
  readonly ok: boolean;
  readonly what: string;
  readonly detail: string;
}

export interface App {
  /** `acme-sidecar check-config`: reach the CA, the platform and nginx, and say what is wrong. */
  checkConfig(): Promise<CheckLine[]>;
  /** Discover and decide, changing nothing (`acme-sidecar once --dry-run`). */
  plan(): Promise<{ lines: PlanLine[]; problems: PassResult['problems']; discoveryError?: string }>;
  readonly reconciler: Reconciler;
  readonly metrics: Metrics;
  /** What /status serves. */
  snapshot(): StatusSnapshot;
  /** Discover, then reconcile every certificate once. Never throws. */
  pass(signal?: AbortSignal): Promise<PassResult>;
  /** Runs until SIGTERM/SIGINT (or `stop()`); resolves when shut down cleanly. */
  runDaemon(): Promise<void>;
  stop(): void;
}

/** DOMAINS plus DOMAINS_FILE (comments dropped), read fresh each time. */
function domainsSource(config: Config): () => Promise<string> {
  return async () => {
    if (!config.domainsFile) return config.domains;
    const text = await readFile(config.domainsFile, 'utf8');
    const entries = text
      .split('\n')
      .filter((l) => !l.trim().startsWith('#'))
      .join('\n');
    return `${config.domains}\n${entries}`;
  };
}

function buildPlatform(config: Config, log: Logger, metrics: Metrics): Platform {
  if (config.platform === 'rancher') {
    const client = new CattleClient({
      // loadConfig guarantees these with PLATFORM=rancher.
      url: config.cattleUrl ?? '',
      accessKey: config.cattleAccessKey ?? '',
      secretKey: config.cattleSecretKey ?? '',
      timeoutMs: config.cattleTimeoutMs,
      ...(config.cattleCaBundle && { caBundlePem: readFileSync(config.cattleCaBundle, 'utf8') }),
      ...(config.cattleCertSha256 && { pinSha256: config.cattleCertSha256 }),
      log: log.child({ component: 'rancher' }),
      onRequest: (method, status) => metrics.platformRequest(method, status),
    });
    return new RancherPlatform(client, {
      domains: domainsSource(config),
      log: log.child({ component: 'rancher' }),
    });
  }
  if (config.platform === 'docker') {
    const dlog = log.child({ component: 'docker' });
    const client = new DockerEngineClient({
      socketPath: config.dockerSocket,
      timeoutMs: config.dockerTimeoutMs,
      log: dlog,
      onRequest: (method, status) => metrics.platformRequest(method, status),
    });
    return new DockerPlatform(client, {
      domains: domainsSource(config),
      log: dlog,
      envHostnames: config.dockerEnvHostnames,
      stoppedGraceMs: config.dockerStoppedGraceMs,
      ...(config.dockerReloadLabel !== 'off' && { reloadLabel: config.dockerReloadLabel }),
      reloadSignal: config.dockerReloadSignal,
    });
  }
  return new StaticPlatform(domainsSource(config));
}

/**
 * `acme-sidecar renew` in cluster mode: only the leader may order, and only
 * within its term; other replicas say who to ask.
 */
function leaderOnly(
  cluster: Cluster,
  reconciler: Reconciler,
): Parameters<typeof reconcilerHandlers>[0]['reconciler'] {
  return {
    status: reconciler.status,
    reconcileOne(spec, signal, opts) {
      const term = cluster.leadership();
      if (!term.signal) {
        const leader = cluster.status().leader;
        throw new ControlHandlerError(
          'UNAVAILABLE',
          `this replica is not the cluster leader${leader ? `; run it on ${leader}` : ''}`,
        );
      }
      const both = signal ? AbortSignal.any([signal, term.signal]) : term.signal;
      return reconciler.reconcileOne(spec, both, opts);
    },
  };
}

export function buildApp(config: Config, deps: { log: Logger; clock?: Clock }): App {
  const clock = deps.clock ?? systemClock;
  const log = deps.log;
  configureAcmeHttp({
    timeoutMs: config.acmeTimeoutMs,
    ...(config.acmeCaBundle && { caBundlePem: readFileSync(config.acmeCaBundle, 'utf8') }),
  });
  // Cluster mode (CLUSTER_ETCD_ENDPOINTS): the shared state is in etcd and
  // live/ and the webroot stay local to each replica.
  const etcd = config.clusterEtcdEndpoints ? createEtcdStore(config) : undefined;
  const fsStore = etcd ? undefined : new FsCertStore(config.stateDir);
  const store: CertStore = etcd?.store ?? (fsStore as FsCertStore);
  const live = new LiveDir(config.stateDir);
  const responder = new WebrootResponder({
    webroot: config.webroot,
    selfCheck: config.selfCheck,
    ...(config.selfCheckAddress && { selfCheckAddress: config.selfCheckAddress }),
    log: log.child({ component: 'webroot' }),
  });
  const eab =
    config.eabKid && config.eabHmacKey
      ? { kid: config.eabKid, hmacKey: config.eabHmacKey }
      : undefined;
  const acmeIssuer = (phase: 'staging' | 'production', directoryUrl: string) =>
    new AcmeIssuer({
      phase,
      directoryUrl,
      store,
      responder: issuerResponder,
      log: log.child({ component: 'acme', phase }),
      ...(config.acmeEmail && { email: config.acmeEmail }),
      ...(eab && { eab }),
    });
  // Filled in below; the metrics read the reconciler's status at scrape time.
  let lastPass: LastPass | undefined;
  const metrics = new Metrics({
    platform: config.platform,
    // Read at scrape time, after the reconciler below exists.
    certificates: () => currentCertificates(),
    lastPass: () => lastPass,
    cluster: () => cluster?.status(),
  });
  onAcmeRequest((e) => metrics.acmeRequest(e));
  const platform = buildPlatform(config, log, metrics);
  const hooks =
    config.hookCommand || config.hookWebhookUrl || config.combinedPemDir
      ? new HookRunner({
          ...(config.hookCommand && { command: config.hookCommand }),
          ...(config.hookWebhookUrl && { webhookUrl: config.hookWebhookUrl }),
          ...(config.combinedPemDir && { combinedPemDir: config.combinedPemDir }),
          log: log.child({ component: 'hooks' }),
        })
      : undefined;
  /** Set in runDaemon: a pass to run when this node becomes the leader. */
  let onLeader: (() => void) | undefined;
  const cluster = etcd
    ? new Cluster({
        client: etcd.client,
        prefix: etcd.layout.coord,
        nodeName: etcd.nodeName,
        ttlSeconds: etcd.leaseTtlSeconds,
        ...(config.selfCheckAddress && { selfCheckAddress: config.selfCheckAddress }),
        selfCheck: config.selfCheck,
        store,
        live,
        webroot: responder,
        ...(hooks && { hooks }),
        clock,
        log: log.child({ component: 'cluster' }),
        onLeaderChange: (view) => {
          if (view.role === 'leader') onLeader?.();
        },
      })
    : undefined;
  // In cluster mode the CA may reach any replica: tokens go to all of them.
  const issuerResponder: ChallengeResponder = cluster?.responder ?? responder;
  const reconciler = new Reconciler({
    ...(hooks && { hooks }),
    budget: new RateBudget(store, clock, config.rateLimits),
    onFailure: (name, code) => metrics.failure(name, code),
    store,
    // The leader publishes what it serves; every replica materializes it.
    live: cluster?.liveTarget ?? live,
    platform,
    clock,
    log: log.child({ component: 'reconciler' }),
    issuers: {
      'self-signed': new SelfSignedIssuer(clock),
      staging: acmeIssuer('staging', config.stagingDirectoryUrl),
      production: acmeIssuer('production', config.productionDirectoryUrl),
    },
    settings: {
      target: config.staging ? 'staging' : 'production',
      keyType: config.keyType,
      // Not the HMAC key itself: only whether and which EAB key id is set.
      accountContext: JSON.stringify([config.acmeEmail ?? '', config.eabKid ?? '']),
      directories: {
        staging: config.stagingDirectoryUrl,
        production: config.productionDirectoryUrl,
      },
      ...(config.renewBeforeDays !== undefined && { renewBeforeDays: config.renewBeforeDays }),
    },
  });

  const discoverer = new Discoverer(platform, log.child({ component: 'discovery' }));
  const controller = new AbortController();

  let lastProblems: PassResult['problems'] = [];
  /** The certificates of the last discovery (the last known set when it failed); for `renew`. */
  let lastSpecs: readonly CertSpec[] | undefined;
  let storeOk = true;

  let recovered = false;
  /** Once per process, before the first pass: clear what a killed run left. */
  async function recover(): Promise<void> {
    if (recovered) return;
    recovered = true;
    const removed = [
      ...(fsStore ? await fsStore.sweep() : []),
      ...(await live.sweep()),
      ...(await responder.sweep()),
    ];
    if (removed.length) log.info('removed what an interrupted run left behind', { removed });
  }

  async function pass(signal?: AbortSignal): Promise<PassResult> {
    // Cluster mode: only the elected leader acts (`acme-sidecar once` does not campaign).
    if (cluster && !cluster.leadership().mayAct) {
      const leader = cluster.status().leader;
      return {
        certificates: [],
        problems: [],
        discoveryError: `CLUSTER_NOT_LEADER: in cluster mode only the elected leader orders and renews${leader ? ` (now ${leader})` : ''}; run acme-sidecar run on every node`,
      };
    }
    await recover();
    const startedAt = new Date().toISOString();
    const found = await discoverer.discover();
    lastSpecs = found.specs;
    if (found.specs.length === 0 && found.problems.length === 0 && !found.error) {
      log.warn(
        config.platform === 'rancher'
          ? 'no certificates configured: set DOMAINS or label services with io.acme-sidecar.domains'
          : config.platform === 'docker'
            ? 'no certificates configured: set DOMAINS or label containers with io.acme-sidecar.domains'
            : 'no certificates configured: set DOMAINS, e.g. DOMAINS=www.example.com',
      );
    }
    const certificates = await reconciler.reconcileAll(found.specs, signal);
    // Servers that read live/ themselves (Docker's nginx) reload before the deployment check.
    await platform
      .reload?.(
        certificates.flatMap((c) =>
          c.serial && c.phase !== 'none' ? [{ name: c.name, serial: c.serial }] : [],
        ),
      )
      .catch((err: unknown) =>
        log.warn(
          'could not make the servers reload their certificates; retrying at the next pass',
          {
            code: errorCode(err),
            error: errorMessage(err),
          },
        ),
      );
    if (config.deployCheckEndpoints)
      await checkDeployments(certificates, config.deployCheckEndpoints);
    storeOk = await store.list('').then(
      () => true,
      () => false,
    );
    const discoveryError = found.error && `${found.error.code}: ${found.error.message}`;
    lastProblems = found.problems;
    lastPass = {
      startedAt,
      finishedAt: new Date().toISOString(),
      ok: !discoveryError && found.problems.length === 0 && certificates.every((c) => c.ready),
      ...(discoveryError && { discoveryError }),
    };
    return { certificates, problems: found.problems, ...(discoveryError && { discoveryError }) };
  }

  /** "Renewed but never reloaded": is every endpoint serving the certificate in live/? */
  async function checkDeployments(
    certificates: readonly CertStatus[],
    endpoints: readonly { host: string; port: number }[],
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

  /**
   * The leader reports its reconciler's view; a replica that does not lead
   * reports what its own live/ serves, against what the leader published.
   */
  function currentCertificates(): CertStatus[] {
    if (!cluster || cluster.leadership().mayAct) return [...reconciler.status.values()];
    const target = config.staging ? 'staging' : 'production';
    return cluster.liveSync.servedCertificates().map((c) => ({
      name: c.name,
      domains: c.domains,
      phase: c.phase ?? 'foreign',
      notBefore: c.notBefore,
      notAfter: c.notAfter,
      serial: c.serial,
      reason: c.inSync ? Reason.Valid : Reason.LiveOutdated,
      ready: c.inSync && (c.phase === 'production' || c.phase === target),
      attempts: 0,
    }));
  }

  function snapshot(): StatusSnapshot {
    return buildStatusSnapshot(
      {
        certificates: currentCertificates(),
        problems: lastProblems,
        target: config.staging ? 'staging' : 'production',
        platform: config.platform,
        ...(lastPass && { lastPass }),
        ...(cluster && { cluster: cluster.status() }),
      },
      clock.now(),
    );
  }

  /** Ready: the store answers and a pass finished recently with discovery working. */
  function readiness(): { ok: boolean; reasons: string[] } {
    const reasons: string[] = [];
    // A replica that does not lead serves what the cluster published.
    if (cluster && !cluster.leadership().mayAct) {
      return cluster.liveSync.hasSynced()
        ? { ok: true, reasons }
        : { ok: false, reasons: ['live/ has not been synced from the cluster yet'] };
    }
    if (!lastPass) reasons.push('the first pass has not finished yet');
    else {
      if (lastPass.discoveryError) reasons.push(`discovery failed: ${lastPass.discoveryError}`);
      // Passes run every LOOP_TIME, or daily on the schedule when it is 0.
      const maxAgeMs =
        config.loopTimeSeconds > 0 ? 3 * config.loopTimeSeconds * 1000 + 60_000 : 26 * 3600_000;
      if (clock.now().getTime() - new Date(lastPass.finishedAt).getTime() > maxAgeMs) {
        reasons.push(`no pass finished since ${lastPass.finishedAt}`);
      }
    }
    if (!storeOk) reasons.push(`the store under ${config.stateDir} cannot be read`);
    return { ok: reasons.length === 0, reasons };
  }

  /**
   * Cluster mode: is CLUSTER_ENCRYPTION_KEY_FILE the cluster's? A replica
   * with another key must never write (or lead): a wrong key fails startup
   * (STORE_DECRYPT_FAILED names both key ids). With etcd unreachable the
   * answer waits; the replica keeps serving its live/ and joins the cluster
   * (sync, tokens, election) once the key is proven.
   */
  async function checkClusterKey(): Promise<boolean> {
    if (!etcd) return true;
    try {
      const check = await etcd.store.checkEncryptionKey();
      log.info('CLUSTER_ENCRYPTION_KEY_FILE is the cluster key', { check });
      return true;
    } catch (err) {
      if (errorCode(err) === 'STORE_DECRYPT_FAILED') throw err;
      log.warn(
        'cannot check CLUSTER_ENCRYPTION_KEY_FILE against etcd yet; serving live/ as it is',
        {
          code: errorCode(err),
          error: errorMessage(err),
        },
      );
      return false;
    }
  }

  async function runDaemon(): Promise<void> {
    const keyProven = await checkClusterKey();
    // First, so that a file in its way stops startup before anything runs.
    // Mutating operations (renew) only on a local 0600 UNIX socket, never on the network.
    const control = await startControlServer({
      path: join(config.stateDir, CONTROL_SOCKET_NAME),
      handlers: reconcilerHandlers({
        status: snapshot,
        specs: () => lastSpecs,
        reconciler: cluster ? leaderOnly(cluster, reconciler) : reconciler,
        signal: controller.signal,
        now: () => clock.now(),
      }),
      log: log.child({ component: 'control' }),
    });
    let running: Promise<void> | undefined;
    let again = false;
    const trigger = (why: string) => {
      if (controller.signal.aborted) return;
      if (running) {
        again = true;
        return;
      }
      // Cluster mode: only the leader discovers, orders, renews and pushes,
      // and its pass stops the moment its lease is in doubt.
      const term = cluster?.leadership();
      if (term && !term.signal) {
        log.debug('pass skipped: not the cluster leader', { why });
        return;
      }
      const signal = term?.signal
        ? AbortSignal.any([controller.signal, term.signal])
        : controller.signal;
      log.debug('pass starting', { why });
      running = (async () => {
        do {
          again = false;
          await pass(signal);
        } while (again && !signal.aborted);
      })().finally(() => {
        running = undefined;
        scheduleRetry();
      });
    };
    // A failed certificate is retried after 1 min, 10 min, ... and a
    // short-lived one may be due for renewal before the next LOOP_TIME pass:
    // wake for the earliest of those instead of waiting for that pass.
    let retryTimer: NodeJS.Timeout | undefined;
    const scheduleRetry = (): void => {
      clearTimeout(retryTimer);
      retryTimer = undefined;
      if (controller.signal.aborted) return;
      const delay = wakeupMs(
        [...reconciler.status.values()].flatMap((c) => [c.nextRetry, c.renewAt]),
        clock.now(),
        config.loopTimeSeconds > 0 ? config.loopTimeSeconds * 1000 : Infinity,
      );
      if (delay !== undefined) retryTimer = setTimeout(() => trigger('retry'), delay);
    };
    const timer =
      config.loopTimeSeconds > 0
        ? setInterval(() => trigger('loop'), config.loopTimeSeconds * 1000)
        : undefined;
    const task = cron.schedule(config.checkSchedule, () => trigger('schedule'));
    if (cluster) {
      // Every replica: clear what a killed run left, then serve (sync live/,
      // mirror tokens) and campaign. A new leader starts with a full pass.
      await recover();
      onLeader = () => trigger('elected');
      log.info('cluster mode', { node: etcd?.nodeName, cluster: config.clusterName });
      if (keyProven) cluster.start();
      else {
        void (async () => {
          while (!controller.signal.aborted) {
            await new Promise((r) => setTimeout(r, 2000));
            if (controller.signal.aborted) return;
            const ok = await checkClusterKey().catch((err: unknown) => {
              log.error('CLUSTER_ENCRYPTION_KEY_FILE is not the cluster key; not joining', {
                code: errorCode(err),
                error: errorMessage(err),
              });
              controller.abort();
              return false;
            });
            if (ok) return cluster.start();
          }
        })();
      }
    }
    const server =
      config.statusAddress === 'off'
        ? undefined
        : await startHttpServer({
            host: config.statusAddress.host,
            port: config.statusAddress.port,
            status: snapshot,
            ready: readiness,
            metrics: () => metrics.render(),
            log: log.child({ component: 'http' }),
          });
    if (server && config.statusAddress !== 'off') {
      log.info('status server listening', {
        address: `${config.statusAddress.host}:${server.port}`,
      });
    }
    log.info('acme-sidecar started', {
      target: config.staging ? 'staging' : 'production',
      loopTime: config.loopTimeSeconds,
      checkSchedule: config.checkSchedule,
    });
    // Deleting a certificate's files from live/ regenerates it promptly (the
    // LXD habit), and DOMAINS_FILE edits apply without a restart. Our own
    // writes also fire events: debounced, they cost one pass that finds
    // nothing to do.
    await mkdir(join(config.stateDir, 'live'), { recursive: true, mode: 0o700 });
    await mkdir(join(config.stateDir, 'archive'), { recursive: true, mode: 0o700 });
    const watcher = chokidar.watch(
      [
        join(config.stateDir, 'live'),
        join(config.stateDir, 'archive'),
        ...(config.domainsFile ? [config.domainsFile] : []),
      ],
      { ignoreInitial: true, followSymlinks: false, depth: 3 },
    );
    let debounce: NodeJS.Timeout | undefined;
    watcher.on('all', (event, changed) => {
      if (changed.includes(TEMP_MARKER)) return;
      clearTimeout(debounce);
      debounce = setTimeout(() => trigger(`watch: ${event} ${changed}`), 500);
    });
    watcher.on('error', (err) => log.warn('file watch failed', { error: errorMessage(err) }));
    // New containers (Docker events) start a pass at once; LOOP_TIME stays the safety net.
    const platformWatch = platform.watch?.((why) => trigger(why));
    trigger('startup');

    await new Promise<void>((resolve) => {
      const onSignal = (sig: string) => {
        log.info('shutting down', { signal: sig });
        resolve();
      };
      process.once('SIGTERM', () => onSignal('SIGTERM'));
      process.once('SIGINT', () => onSignal('SIGINT'));
      controller.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    controller.abort();
    clearTimeout(debounce);
    await watcher.close();
    await platformWatch?.close();
    // No new renewals; one in flight sees the abort and answers within the close grace.
    await control.close();
    if (timer) clearInterval(timer);
    clearTimeout(retryTimer);
    await task.stop();
    // In-flight ACME calls cannot be cancelled mid-request; give them a
    // bounded time to finish, then abandon them.
    const grace = new Promise((r) => setTimeout(r, 20_000).unref());
    await Promise.race([running, grace]);
    await cluster?.stop();
    etcd?.close();
    await responder.cleanupAll();
    await server?.close();
    log.info('stopped');
  }

  async function checkConfig(): Promise<CheckLine[]> {
    const lines: CheckLine[] = [
      { ok: true, what: 'configuration', detail: 'every variable is valid' },
    ];
    const phases: ('staging' | 'production')[] = config.staging
      ? ['staging']
      : ['staging', 'production'];
    for (const phase of phases) {
      const url = phase === 'staging' ? config.stagingDirectoryUrl : config.productionDirectoryUrl;
      lines.push({ what: `${phase} CA`, ...(await probeDirectory(url, config.acmeTimeoutMs)) });
    }
    let specs: readonly CertSpec[] = [];
    try {
      const found = await platform.discover();
      specs = found.specs;
      lines.push({
        ok: true,
        what: `platform (${platform.name})`,
        detail: `${found.specs.length} certificate(s) requested${found.problems.length ? `, ${found.problems.length} hostname(s) skipped` : ''}`,
      });
      for (const p of found.problems) {
        lines.push({
          ok: false,
          what: `hostname ${JSON.stringify(p.value)}`,
          detail: `${p.code}: ${p.message}`,
        });
      }
    } catch (err) {
      lines.push({ ok: false, what: `platform (${platform.name})`, detail: errorMessage(err) });
    }
    // The path the CA takes: a token in WEBROOT, fetched through nginx with the hostname as Host.
    for (const domain of new Set(specs.flatMap((s) => s.domains))) {
      const token = randomBytes(24).toString('base64url');
      const keyAuth = `${token}.check-config`;
      try {
        await responder.present(domain, token, keyAuth);
        await responder.verify(domain, token, keyAuth);
        lines.push({
          ok: true,
          what: `webroot for ${domain}`,
          detail: 'nginx serves WEBROOT/.well-known/acme-challenge/',
        });
      } catch (err) {
        lines.push({ ok: false, what: `webroot for ${domain}`, detail: errorMessage(err) });
      } finally {
        await responder.cleanup(domain, token).catch(() => undefined);
      }
    }
    if (specs.length === 0) {
      lines.push({
        ok: false,
        what: 'certificates',
        detail: 'none requested: set DOMAINS or label services',
      });
    }
    return lines;
  }

  async function plan() {
    const found = await discoverer.discover();
    const lines: PlanLine[] = [];
    for (const spec of found.specs) {
      const p = await reconciler.plan(spec);
      const a = p.action;
      const would =
        a.kind === 'placeholder'
          ? `write a self-signed placeholder (${a.reason})`
          : a.kind === 'issue'
            ? `order a certificate from the ${a.phase} CA (${a.reason})`
            : a.kind === 'deploy'
              ? `serve the stored ${a.phase} certificate (${a.reason})`
              : p.platform?.kind === 'push'
                ? `push the certificate to ${platform.name} (${p.platform.reason})`
                : p.platform?.kind === 'conflict'
                  ? `leave ${platform.name}'s certificate alone: not ours (${p.platform.reason})`
                  : `nothing (${a.reason}${a.renewAt ? `, renews after ${a.renewAt.toISOString()}` : ''})`;
      lines.push({ name: spec.name, domains: spec.domains, would });
    }
    return {
      lines,
      problems: found.problems,
      ...(found.error && { discoveryError: `${found.error.code}: ${found.error.message}` }),
    };
  }

  return {
    reconciler,
    metrics,
    pass,
    plan,
    checkConfig,
    snapshot,
    runDaemon,
    stop: () => controller.abort(),
  };
}
