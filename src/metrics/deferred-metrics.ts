import type { AcmeRequestEvent } from '../acme/http.js';
import type { Metrics, MetricsSource } from './metrics.js';

/** What the app records into and serves: Metrics, or DeferredMetrics in front of it. */
export interface MetricsSink {
  observe(source: MetricsSource): void;
  acmeRequest(e: AcmeRequestEvent): void;
  platformRequest(method: string, status: string): void;
  failure(name: string, code: string): void;
  render(): Promise<{ contentType: string; body: string }>;
  /** Loads what render() needs now rather than at the first render(). */
  load?(): Promise<unknown>;
}

/** Events kept before prom-client is loaded; one more starts loading it. */
export const DEFERRED_METRICS_MAX_BUFFERED = 10_000;

/**
 * Metrics without loading prom-client until they are needed: events are
 * kept in order and replayed into the real Metrics when it is loaded, by
 * the first render() (a scrape of /metrics), by load() (the daemon, after
 * its first pass), or once DEFERRED_METRICS_MAX_BUFFERED events wait.
 * `once` serves no metrics and so never loads prom-client (with
 * @opentelemetry/api and its default collectors): 10 ms of CPU before the
 * first order (`npx tsx scripts/bench-first-order.ts --cpu-prof DIR`).
 */
export class DeferredMetrics implements MetricsSink {
  private real: Metrics | undefined;
  private loading: Promise<Metrics> | undefined;
  private buffered: ((m: Metrics) => void)[] = [];
  private source: MetricsSource | undefined;

  constructor(private readonly create: () => Promise<Metrics>) {}

  /**
   * Loads prom-client (once) and replays what was recorded before. A load
   * that fails (a chunk gone from the image) is tried again by the next
   * call; meanwhile only the newest 2 x DEFERRED_METRICS_MAX_BUFFERED
   * events are kept.
   */
  load(): Promise<Metrics> {
    this.loading ??= this.create().then(
      (m) => {
        if (this.source) m.observe(this.source);
        for (const replay of this.buffered) replay(m);
        this.buffered = [];
        this.real = m;
        return m;
      },
      (err: unknown) => {
        this.loading = undefined;
        throw err;
      },
    );
    return this.loading;
  }

  /** Whether prom-client has been loaded. */
  get loaded(): boolean {
    return this.real !== undefined;
  }

  private record(event: (m: Metrics) => void): void {
    if (this.real) return event(this.real);
    this.buffered.push(event);
    if (this.buffered.length > DEFERRED_METRICS_MAX_BUFFERED) {
      // Past twice the limit the load is failing: the oldest events go.
      if (this.buffered.length > 2 * DEFERRED_METRICS_MAX_BUFFERED) this.buffered.shift();
      // Its failure is the next render()'s to report (/metrics answers 500).
      this.load().catch(() => undefined);
    }
  }

  observe(source: MetricsSource): void {
    this.source = source;
    this.real?.observe(source);
  }

  acmeRequest(e: AcmeRequestEvent): void {
    this.record((m) => m.acmeRequest(e));
  }

  platformRequest(method: string, status: string): void {
    this.record((m) => m.platformRequest(method, status));
  }

  failure(name: string, code: string): void {
    this.record((m) => m.failure(name, code));
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return (await this.load()).render();
  }
}
