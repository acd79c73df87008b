import { Counter, Gauge, Registry, Summary, collectDefaultMetrics } from 'prom-client';
import type { AcmeRequestEvent } from '../acme/http.js';
import type { CertStatus, StatusCluster } from '../domain/status.js';

/**
 * Prometheus metrics. The certificate and ACME client series use
 * cert-manager's exact names and label names, so dashboards and alerts
 * written for cert-manager (e.g. "expires in under 7 days") work unchanged:
 * `name` is the certificate, `namespace` the platform, `issuer_name` the
 * phase of the certificate served (self-signed, staging, production).
 * Series of our own are prefixed `acme_sidecar_`.
 */
export interface MetricsSource {
  certificates(): readonly CertStatus[];
  lastPass():
    { finishedAt: string; ok: boolean; cpuSeconds?: number; storeReads?: number } | undefined;
  /** Cluster mode only. */
  cluster?(): StatusCluster | undefined;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly acmeRequests: Counter;
  private readonly acmeDuration: Summary;
  private readonly platformRequests: Counter;
  private readonly failures: Counter;

  /** Read at scrape time; set by observe() once what it reads exists. */
  private source: MetricsSource = { certificates: () => [], lastPass: () => undefined };

  /**
   * `platform` labels every series; the certificates, the last pass and
   * the cluster are read at scrape time from `source` (or observe()).
   */
  constructor(
    private readonly platform: string,
    source?: MetricsSource,
  ) {
    if (source) this.source = source;
    const read = () => this.source;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const certLabels = ['name', 'namespace', 'issuer_name', 'issuer_kind', 'issuer_group'];
    const labelsOf = (c: CertStatus) => ({
      name: c.name,
      namespace: platform,
      issuer_name: c.phase,
      issuer_kind: 'ACMEIssuer',
      issuer_group: 'acme-sidecar',
    });
    const certs = () => read().certificates();
    const timestampGauge = (
      name: string,
      help: string,
      pick: (c: CertStatus) => string | undefined,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: certLabels,
        registers,
        collect() {
          this.reset();
          for (const c of certs()) {
            const t = pick(c);
            if (t) this.set(labelsOf(c), Math.floor(new Date(t).getTime() / 1000));
          }
        },
      });
    timestampGauge(
      'certmanager_certificate_expiration_timestamp_seconds',
      'The date after which the certificate expires, as a Unix timestamp.',
      (c) => c.notAfter,
    );
    timestampGauge(
      'certmanager_certificate_not_before_timestamp_seconds',
      'The date before which the certificate is not valid, as a Unix timestamp.',
      (c) => c.notBefore,
    );
    timestampGauge(
      'certmanager_certificate_renewal_timestamp_seconds',
      'The date after which the certificate will be renewed, as a Unix timestamp.',
      (c) => c.renewAt,
    );
    new Gauge({
      name: 'acme_sidecar_certificate_renewal_source',
      help: 'Where each renewal time came from: 1 for the current `source`, `ari` (the CA renewal window, RFC 9773) or `lifetime` (the lifetime rule); `profile` is the ACME profile ordered under (empty: the CA default).',
      labelNames: [...certLabels, 'source', 'profile'],
      registers,
      collect() {
        this.reset();
        for (const c of certs()) {
          if (!c.renewAt) continue;
          const now = c.renewSource ?? 'lifetime';
          for (const source of ['ari', 'lifetime']) {
            this.set({ ...labelsOf(c), source, profile: c.profile ?? '' }, source === now ? 1 : 0);
          }
        }
      },
    });
    new Gauge({
      name: 'certmanager_certificate_ready_status',
      help: 'The ready status of the certificate (1 for the current condition).',
      labelNames: [...certLabels, 'condition'],
      registers,
      collect() {
        this.reset();
        for (const c of certs()) {
          for (const condition of ['True', 'False', 'Unknown']) {
            const now = c.ready ? 'True' : c.phase === 'none' ? 'Unknown' : 'False';
            this.set({ ...labelsOf(c), condition }, condition === now ? 1 : 0);
          }
        }
      },
    });
    const acmeLabels = ['scheme', 'host', 'path', 'method', 'status'];
    this.acmeRequests = new Counter({
      name: 'certmanager_http_acme_client_request_count',
      help: 'The number of requests made by the ACME client; path is the issuance step (newOrder, pollAuthorization, finalize...), or newNonce for a nonce HEAD (sent only when no earlier answer left a nonce to use).',
      labelNames: acmeLabels,
      registers,
    });
    this.acmeDuration = new Summary({
      name: 'certmanager_http_acme_client_request_duration_seconds',
      help: 'The HTTP request latencies in seconds for the ACME client; path is the issuance step.',
      labelNames: acmeLabels,
      registers,
    });
    this.platformRequests = new Counter({
      name: 'acme_sidecar_platform_requests_total',
      help: 'Requests to the platform API, by method and outcome (HTTP status or error code).',
      labelNames: ['platform', 'method', 'status'],
      registers,
    });
    this.failures = new Counter({
      name: 'acme_sidecar_certificate_failures_total',
      help: 'Failed certificate steps, by certificate and error code.',
      labelNames: ['name', 'code'],
      registers,
    });
    new Gauge({
      name: 'acme_sidecar_deployment_stale',
      help: '1 when an endpoint in DEPLOY_CHECK_ENDPOINTS still serves an older certificate after the grace period.',
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        for (const c of certs())
          if (c.deployment) this.set({ name: c.name }, c.deployment.stale ? 1 : 0);
      },
    });
    new Gauge({
      name: 'acme_sidecar_cluster_leader',
      help: 'Cluster mode: 1 on the node that may act as leader now, 0 on the others; `leader` is the elected node as this one sees it.',
      labelNames: ['node', 'leader'],
      registers,
      collect() {
        this.reset();
        const c = read().cluster?.();
        if (c) this.set({ node: c.node, leader: c.leader ?? '' }, c.role === 'leader' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'acme_sidecar_cluster_replica_sync_lag_seconds',
      help: 'Cluster mode: how long the newest published certificate has waited for each replica to materialize it (0 when in sync).',
      labelNames: ['replica'],
      registers,
      collect() {
        this.reset();
        for (const r of read().cluster?.()?.replicas ?? [])
          this.set({ replica: r.name }, r.lagSeconds);
      },
    });
    new Gauge({
      name: 'acme_sidecar_last_pass_timestamp_seconds',
      help: 'When the last discovery and reconcile pass finished, as a Unix timestamp.',
      registers,
      collect() {
        const p = read().lastPass();
        if (p) this.set(Math.floor(new Date(p.finishedAt).getTime() / 1000));
      },
    });
    new Gauge({
      name: 'acme_sidecar_last_pass_cpu_seconds',
      help: 'Process CPU time (user + system) spent while the last pass ran, in seconds.',
      registers,
      collect() {
        const cpu = read().lastPass()?.cpuSeconds;
        if (cpu !== undefined) this.set(cpu);
      },
    });
    new Gauge({
      name: 'acme_sidecar_last_pass_store_reads',
      help: 'Records the last pass read from the store (files or etcd keys); each record is read at most once per pass.',
      registers,
      collect() {
        const reads = read().lastPass()?.storeReads;
        if (reads !== undefined) this.set(reads);
      },
    });
    new Gauge({
      name: 'acme_sidecar_last_pass_success',
      help: '1 if the last pass ended with every certificate ready and discovery working.',
      registers,
      collect() {
        const p = read().lastPass();
        if (p) this.set(p.ok ? 1 : 0);
      },
    });
  }

  /** What the gauges read at scrape time, once it exists. */
  observe(source: MetricsSource): void {
    this.source = source;
  }

  acmeRequest(e: AcmeRequestEvent): void {
    const labels = {
      scheme: 'https',
      host: e.host,
      path: e.step,
      method: e.method,
      status: e.status,
    };
    this.acmeRequests.inc(labels);
    this.acmeDuration.observe(labels, e.seconds);
  }

  platformRequest(method: string, status: string): void {
    this.platformRequests.inc({ platform: this.platform, method, status });
  }

  failure(name: string, code: string): void {
    this.failures.inc({ name, code });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
