/**
 * The composition root: the only module that knows every concrete class.
 * It builds the store, the issuers, the platform, the hooks and (in
 * cluster mode) the coordination, and hands them to the app (src/app/),
 * which holds what runs: the pass, the daemon, readiness, check-config and
 * the dry-run plan.
 *
 * The Rancher and Docker platforms, etcd, the cluster and the DNS-01
 * providers are imported only when configured: etcd's gRPC client alone takes longer to load than the
 * rest of a static-platform sidecar needs to place its first order.
 */
import { errorMessage } from './domain/errors.js';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { AcmeIssuer } from './acme/acme-issuer.js';
import { configureAcmeHttp, onAcmeRequest } from './acme/http.js';
import { probeDirectory } from './acme/probe.js';
import { SelfSignedIssuer } from './acme/self-signed-issuer.js';
import { createApp, type App } from './app/app.js';
import { solo, type Coordination } from './app/coordination.js';
import { WebrootResponder } from './challenge/webroot-responder.js';
import type { Cluster } from './cluster/cluster.js';
import { SECRET_ENV_NAMES, type Config } from './config/schema.js';
import type { PropagationChecker } from './challenge/dns/checker.js';
import type { DnsResponder } from './challenge/dns/dns-responder.js';
import type { DnsProvider } from './challenge/dns/provider.js';
import { LiveDir } from './deploy/live-dir.js';
import { HookRunner } from './hooks/hooks.js';
import { systemClock, type Clock } from './lifecycle/clock.js';
import { DeferredMetrics, type MetricsSink } from './metrics/deferred-metrics.js';
import type { Platform } from './platform/platform.js';
import { StaticPlatform } from './platform/static-platform.js';
import { RateBudget } from './reconcile/budget.js';
import { Discoverer } from './reconcile/discoverer.js';
import { Reconciler } from './reconcile/reconciler.js';
import type { EtcdStoreHandle } from './store/etcd-store.js';
import { FsCertStore } from './store/fs-store.js';
import { claimsKey } from './store/keys.js';
import { isLocalFilesystem, watchStore } from './store/fs-watch.js';
import { PassReadCache } from './store/pass-cache.js';
import { claimsKind } from './store/record-kinds.js';
import { recordSlot } from './store/record-slot.js';
import { RecordReader } from './store/records.js';
import type { CertStore } from './store/store.js';
import type { Logger } from './util/log.js';

export type { App, CheckLine, PassResult, PlanLine } from './app/app.js';

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

async function buildPlatform(
  config: Config,
  log: Logger,
  metrics: MetricsSink,
  state: { store: CertStore; records: RecordReader },
): Promise<Platform> {
  const onRequest = (method: string, status: string) => metrics.platformRequest(method, status);
  if (config.platform === 'rancher') {
    const { CattleClient } = await import('./platform/rancher/cattle-client.js');
    const { RancherPlatform } = await import('./platform/rancher/rancher-platform.js');
    const rlog = log.child({ component: 'rancher' });
    const client = new CattleClient({
      // loadConfig guarantees these with PLATFORM=rancher.
      url: config.cattleUrl ?? '',
      accessKey: config.cattleAccessKey ?? '',
      secretKey: config.cattleSecretKey ?? '',
      timeoutMs: config.cattleTimeoutMs,
      ...(config.cattleCaBundle && { caBundlePem: readFileSync(config.cattleCaBundle, 'utf8') }),
      ...(config.cattleCertSha256 && { pinSha256: config.cattleCertSha256 }),
      log: rlog,
      onRequest,
    });
    return new RancherPlatform(client, { domains: domainsSource(config), log: rlog });
  }
  if (config.platform === 'docker') {
    const { DockerEngineClient } = await import('./platform/docker/engine-client.js');
    const { DockerPlatform } = await import('./platform/docker/docker-platform.js');
    const { storedCertificates } = await import('./store/record-slot.js');
    const { platformRecordKey } = await import('./store/keys.js');
    const { reloadsKind, sourcesKind } = await import('./store/record-kinds.js');
    const { store, records } = state;
    const dlog = log.child({ component: 'docker' });
    const client = new DockerEngineClient({
      socketPath: config.dockerSocket,
      timeoutMs: config.dockerTimeoutMs,
      log: dlog,
      onRequest,
    });
    return new DockerPlatform(client, {
      domains: domainsSource(config),
      log: dlog,
      envHostnames: config.dockerEnvHostnames,
      stoppedGraceMs: config.dockerStoppedGraceMs,
      // In the store (etcd in cluster mode): the grace period and what was
      // signalled survive a restart, `once` and a change of leader.
      sources: recordSlot(store, records, platformRecordKey('docker-sources'), sourcesKind),
      storedCertificates: () => storedCertificates(store, records),
      reloads: recordSlot(store, records, platformRecordKey('docker-reloads'), reloadsKind),
      ...(config.dockerReloadLabel !== 'off' && { reloadLabel: config.dockerReloadLabel }),
      reloadSignal: config.dockerReloadSignal,
    });
  }
  return new StaticPlatform(domainsSource(config));
}

/** A secret from its variable, else from its `_FILE` (one trailing newline dropped). */
function secretFrom(value: string | undefined, file: string | undefined): string | undefined {
  if (value !== undefined) return value;
  return file === undefined ? undefined : readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}

/** The sidecar's environment without any secret setting: what EXEC_PATH runs with. */
function envWithoutSecrets(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of SECRET_ENV_NAMES) delete env[name];
  return env;
}

/** The DNS-01 modules (dns-packet among them) are imported only when a provider is configured. */
async function buildDnsProvider(
  config: Config,
  clock: Clock,
  log: Logger,
): Promise<DnsProvider | undefined> {
  const plog = log.child({ component: 'dns', provider: config.dnsProvider });
  switch (config.dnsProvider) {
    case 'rfc2136': {
      const { Rfc2136Provider } = await import('./challenge/dns/rfc2136.js');
      const { parseServer } = await import('./challenge/dns/wire.js');
      const secret = secretFrom(config.rfc2136TsigSecret, config.rfc2136TsigSecretFile);
      if (!config.rfc2136TsigKey || secret === undefined) {
        throw new Error(
          'unsigned RFC 2136 updates are not supported: set RFC2136_TSIG_KEY and RFC2136_TSIG_SECRET',
        );
      }
      return new Rfc2136Provider({
        server: parseServer(config.rfc2136Nameserver ?? ''),
        key: {
          name: config.rfc2136TsigKey,
          algorithm: config.rfc2136TsigAlgorithm,
          secret: Buffer.from(secret, 'base64'),
        },
        timeoutMs: 5000,
        nowSeconds: () => clock.now().getTime() / 1000,
        log: plog,
      });
    }
    case 'pdns': {
      const { PowerDnsProvider } = await import('./challenge/dns/pdns.js');
      return new PowerDnsProvider({
        apiUrl: config.pdnsApiUrl ?? '',
        apiKey: secretFrom(config.pdnsApiKey, config.pdnsApiKeyFile) ?? '',
        serverId: config.pdnsServerId,
        timeoutMs: 10_000,
        log: plog,
      });
    }
    case 'exec': {
      const { ExecProvider } = await import('./challenge/dns/exec.js');
      return new ExecProvider({
        path: config.execPath ?? '',
        timeoutMs: config.execTimeoutMs,
        env: envWithoutSecrets(),
        log: plog,
      });
    }
    default:
      return undefined;
  }
}

/**
 * DNS-01 (DNS_PROVIDER), imported only when configured, like the platforms
 * and etcd: a sidecar on HTTP-01 never loads the DNS wire code.
 */
/** Who answers for a zone's TXT records: DNS_RESOLVERS, else its authoritative servers. */
async function buildDnsChecker(config: Config, log: Logger): Promise<PropagationChecker> {
  const { PropagationChecker } = await import('./challenge/dns/checker.js');
  const { parseServer } = await import('./challenge/dns/wire.js');
  const { getServers } = await import('node:dns');
  return new PropagationChecker({
    ...(config.dnsResolvers && { resolvers: config.dnsResolvers.map((r) => parseServer(r)) }),
    bootstrap: () => (config.dnsBootstrapResolvers ?? getServers()).map((r) => parseServer(r)),
    authoritativePort: config.dnsAuthoritativePort,
    timeoutMs: config.dnsPropagationTimeoutMs,
    intervalMs: config.dnsPollingIntervalMs,
    log: log.child({ component: 'dns' }),
  });
}

async function buildDnsResponder(
  config: Config,
  store: CertStore,
  clustered: boolean,
  clock: Clock,
  log: Logger,
  dnsChecker: () => Promise<PropagationChecker>,
): Promise<DnsResponder | undefined> {
  const provider = await buildDnsProvider(config, clock, log);
  if (!provider) return undefined;
  const { DnsResponder } = await import('./challenge/dns/dns-responder.js');
  return new DnsResponder({
    provider,
    checker: await dnsChecker(),
    store,
    clock,
    // A replica may be the leader with an order in flight: only old records are leftovers.
    clustered,
    log: log.child({ component: 'dns', provider: provider.name }),
  });
}

function buildHooks(config: Config, log: Logger): HookRunner | undefined {
  if (!config.hookCommand && !config.hookWebhookUrl && !config.combinedPemDir) return undefined;
  return new HookRunner({
    ...(config.hookCommand && { command: config.hookCommand }),
    ...(config.hookWebhookUrl && { webhookUrl: config.hookWebhookUrl }),
    webhookProxy: config.hookWebhookProxy,
    ...(config.combinedPemDir && { combinedPemDir: config.combinedPemDir }),
    log: log.child({ component: 'hooks' }),
  });
}

/**
 * Cluster mode (CLUSTER_ETCD_ENDPOINTS): the leader acts, every replica
 * serves; ACME tokens go to every replica (the CA may reach any of them)
 * and the leader publishes what it writes to live/.
 */
async function buildCluster(
  config: Config,
  etcd: EtcdStoreHandle,
  parts: { live: LiveDir; webroot: WebrootResponder; hooks?: HookRunner },
  clock: Clock,
  log: Logger,
): Promise<{ coordination: Coordination; cluster: Cluster }> {
  const { Cluster } = await import('./cluster/cluster.js');
  const { clusterCoordination } = await import('./app/coordination.js');
  const cluster = new Cluster({
    client: etcd.client,
    prefix: etcd.layout.coord,
    keyring: etcd.keyring,
    nodeName: etcd.nodeName,
    ttlSeconds: etcd.leaseTtlSeconds,
    ...(config.selfCheckAddress && { selfCheckAddress: config.selfCheckAddress }),
    selfCheck: config.selfCheck,
    store: etcd.store,
    live: parts.live,
    webroot: parts.webroot,
    ...(parts.hooks && { hooks: parts.hooks }),
    clock,
    log: log.child({ component: 'cluster' }),
  });
  const coordination = clusterCoordination({
    cluster,
    nodeName: etcd.nodeName,
    clusterName: config.clusterName,
    checkKey: () => etcd.store.checkEncryptionKey(),
    log,
  });
  return { coordination, cluster };
}

export async function buildApp(config: Config, deps: { log: Logger; clock?: Clock }): Promise<App> {
  const clock = deps.clock ?? systemClock;
  const { log } = deps;
  const target = config.staging ? 'staging' : 'production';
  configureAcmeHttp({
    timeoutMs: config.acmeTimeoutMs,
    ...(config.acmeCaBundle && { caBundlePem: readFileSync(config.acmeCaBundle, 'utf8') }),
  });
  // prom-client is loaded when metrics are served, never by `once`.
  const metrics = new DeferredMetrics(
    async () => new (await import('./metrics/metrics.js')).Metrics(config.platform),
  );
  onAcmeRequest((e) => metrics.acmeRequest(e));

  // Cluster mode keeps the shared state in etcd; live/ and the webroot stay
  // local to each replica.
  const etcd = config.clusterEtcdEndpoints
    ? (await import('./store/etcd-store.js')).createEtcdStore(config)
    : undefined;
  const fsStore = etcd ? undefined : new FsCertStore(config.stateDir);
  // Each record is read once per pass (store/pass-cache.ts); the stores themselves never cache.
  const store = new PassReadCache(etcd?.store ?? (fsStore as FsCertStore));
  const live = new LiveDir(config.liveDir);
  // One reader for every record, so a certificate's status hears of each of
  // its records found corrupt, whoever read it (reconciler or issuer).
  const records = new RecordReader(store, clock, log.child({ component: 'store' }));
  const webroot = new WebrootResponder({
    webroot: config.webroot,
    selfCheck: config.selfCheck,
    ...(config.selfCheckAddress && { selfCheckAddress: config.selfCheckAddress }),
    log: log.child({ component: 'webroot' }),
  });
  // One DNS checker per app, built at its first use: the DNS-01 responder's
  // and every dns-persist-01 look-up of check-config share it.
  let checker: Promise<PropagationChecker> | undefined;
  const dnsChecker = () => (checker ??= buildDnsChecker(config, log));
  const dnsResponder = await buildDnsResponder(
    config,
    store,
    etcd !== undefined,
    clock,
    log,
    dnsChecker,
  );
  const platform = await buildPlatform(config, log, metrics, { store, records });
  const hooks = buildHooks(config, log);
  const clustered =
    etcd && (await buildCluster(config, etcd, { live, webroot, hooks }, clock, log));

  const eab =
    config.eabKid && config.eabHmacKey
      ? { kid: config.eabKid, hmacKey: config.eabHmacKey }
      : undefined;
  const acmeIssuer = (phase: 'staging' | 'production', directoryUrl: string) =>
    new AcmeIssuer({
      phase,
      directoryUrl,
      store,
      // DNS-01 needs no token on any replica: the cluster fan-out is for HTTP-01 only.
      responder: clustered?.cluster.responder ?? webroot,
      ...(dnsResponder && { dnsResponder }),
      challenge: config.acmeChallenge,
      log: log.child({ component: 'acme', phase }),
      ...(config.acmeEmail && { email: config.acmeEmail }),
      ...(eab && { eab }),
      ari: config.ari === 'auto',
      records,
      clock,
    });
  const issuers = {
    staging: acmeIssuer('staging', config.stagingDirectoryUrl),
    production: acmeIssuer('production', config.productionDirectoryUrl),
  };
  const reconciler = new Reconciler({
    ...(hooks && { hooks }),
    budget: new RateBudget(store, clock, config.rateLimits, { records }),
    records,
    onFailure: (name, code) => metrics.failure(name, code),
    store,
    live: clustered?.cluster.liveTarget ?? live,
    platform,
    clock,
    log: log.child({ component: 'reconciler' }),
    issuers: {
      'self-signed': new SelfSignedIssuer(clock),
      staging: issuers.staging,
      production: issuers.production,
    },
    settings: {
      target,
      keyType: config.keyType,
      ...(config.acmeProfile !== undefined && { profile: config.acmeProfile }),
      // Not the HMAC key itself: only whether and which EAB key id is set.
      accountContext: JSON.stringify([config.acmeEmail ?? '', config.eabKid ?? '']),
      directories: {
        staging: config.stagingDirectoryUrl,
        production: config.productionDirectoryUrl,
      },
      ...(config.renewBeforeDays !== undefined && { renewBeforeDays: config.renewBeforeDays }),
      concurrency: config.maxConcurrentOrders,
    },
  });

  return createApp({
    settings: {
      stateDir: config.stateDir,
      liveDir: config.liveDir,
      loopTimeSeconds: config.loopTimeSeconds,
      checkSchedule: config.checkSchedule,
      statusAddress: config.statusAddress,
      renewCooldownSeconds: config.renewCooldownSeconds,
      concurrency: config.maxConcurrentOrders,
      ...(config.domainsFile && { domainsFile: config.domainsFile }),
      target,
    },
    platform,
    discoverer: new Discoverer(platform, log.child({ component: 'discovery' }), {
      allowedDomains: config.allowedDomains,
      claims: recordSlot(store, records, claimsKey(), claimsKind),
      clock,
    }),
    reconciler,
    metrics,
    coordination: clustered?.coordination ?? solo,
    probeStore: () => store.list(''),
    storeView: store,
    // Kept live/ bundles only where this host sees every change (not NFS:
    // a file removed from another host raises no event here).
    liveFeed: (feed) => live.follow(feed && isLocalFilesystem(live.root) ? feed : undefined),
    ...(fsStore && {
      watchStore: () => {
        let warned = false;
        const feed = watchStore(fsStore.root, {
          onError: (err) => {
            if (warned) return;
            warned = true;
            log.warn(
              'cannot watch the state directory everywhere; records there are read every pass',
              {
                error: errorMessage(err),
              },
            );
          },
        });
        if (!feed) {
          log.info('the state directory is not on a local filesystem: records are read every pass');
          return undefined;
        }
        store.follow(feed);
        return { close: () => store.unfollow() };
      },
    }),
    sweepers: [
      ...(fsStore ? [() => fsStore.sweep()] : []),
      () => live.sweep(),
      () => webroot.sweep(),
      ...(dnsResponder ? [() => dnsResponder.sweep()] : []),
    ],
    ...(config.deployCheckEndpoints && { deployCheckEndpoints: config.deployCheckEndpoints }),
    checks: {
      directories: (config.staging
        ? ['staging' as const]
        : ['staging' as const, 'production' as const]
      ).map((phase) => ({
        phase,
        url: phase === 'staging' ? config.stagingDirectoryUrl : config.productionDirectoryUrl,
      })),
      probeDirectory: (url) => probeDirectory(url, config.acmeTimeoutMs),
      ...(config.acmeProfile !== undefined && { profile: config.acmeProfile }),
      allowedDomains: config.allowedDomains,
      responder: webroot,
      challenge: config.acmeChallenge,
      persistRecords: (phase, domains) => issuers[phase].expectedPersistRecords(domains),
      lookupTxt: async (fqdn) => {
        const c = await dnsChecker();
        return c.ask(await c.servers(fqdn), fqdn);
      },
      nowS: () => Math.floor(clock.now().getTime() / 1000),
    },
    persistRecords: async (domains) => [
      ...(await issuers.staging.expectedPersistRecords(domains)),
      ...(target === 'production' ? await issuers.production.expectedPersistRecords(domains) : []),
    ],
    cleanup: async () => {
      await dnsResponder?.cleanupAll();
      etcd?.close();
      await webroot.cleanupAll();
    },
    clock,
    log,
  });
}
