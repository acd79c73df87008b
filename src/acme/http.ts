import { AsyncLocalStorage } from 'node:async_hooks';
import https from 'node:https';
import tls from 'node:tls';
import acme from 'acme-client';
import axios, { type AxiosResponse, type InternalAxiosRequestConfig } from 'axios';

/** An RFC 8555 §6.7 problem document, as the CA sent it. */
export interface AcmeProblem {
  readonly type: string;
  readonly detail: string;
  readonly status: number;
  /** Seconds from a Retry-After header, when the CA sent one. */
  readonly retryAfter?: number;
}

/**
 * acme-client turns a CA's problem document into a plain Error carrying only
 * its `detail`. To classify failures by the problem `type` (rateLimited,
 * badNonce, unauthorized...), every response passing through acme-client's
 * axios instance is inspected here, and problems are recorded in the
 * AsyncLocalStorage context of the issuance that made the request.
 */
export interface AcmeCallContext {
  readonly problems: AcmeProblem[];
  /** Code of the last network failure (ECONNREFUSED, ECONNABORTED...). */
  networkError?: string;
  /** The issuance step making requests now ("newOrder", "finalize"...). */
  step: string;
}
const context = new AsyncLocalStorage<AcmeCallContext>();

/** ACME requests made, keyed "<step> <HTTP status>" (nonce fetches included). */
export const acmeRequestCounts = new Map<string, number>();

let installed = false;

export interface AcmeHttpOptions {
  /** Extra PEM roots trusted for the CA's HTTPS (added to the system roots). */
  readonly caBundlePem?: string;
  /** Per-request timeout. */
  readonly timeoutMs: number;
}

/**
 * Configures acme-client's shared axios instance once for the process.
 *
 * Its HTTP adapter is wrapped rather than adding an interceptor, because
 * acme-client's own retry interceptor runs first and, once its retries are
 * spent on a network error, throws a TypeError (`validateStatus(undefined)`)
 * that has lost the error code. The wrapper sees every real exchange,
 * retries included, so it can record problems, network errors and counts.
 */
export function configureAcmeHttp(opts: AcmeHttpOptions): void {
  const ax = acme.axios;
  ax.defaults.timeout = opts.timeoutMs;
  ax.defaults.proxy = false;
  ax.defaults.httpsAgent = new https.Agent({
    keepAlive: true,
    ...(opts.caBundlePem && { ca: [...tls.rootCertificates, opts.caBundlePem] }),
  });
  // Short in-request retries for 5xx and dropped connections; anything
  // longer is the per-certificate backoff's job (lifecycle/policy.ts).
  const settings = (ax.defaults as unknown as { acmeSettings: AcmeSettings }).acmeSettings;
  settings.retryMaxAttempts = 2;
  settings.retryDefaultDelay = 1;
  if (installed) return;
  installed = true;
  const inner = axios.getAdapter('http');
  ax.defaults.adapter = async (config: InternalAxiosRequestConfig) => {
    try {
      const resp = await inner(config);
      record(resp);
      // A rate limit's Retry-After can be hours: acme-client would sleep
      // that long inside the request. Fail now; the backoff honours it.
      if (resp.status === 429) {
        (config as { retryAttempt?: number }).retryAttempt = settings.retryMaxAttempts;
      }
      return resp;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const ctx = context.getStore();
      if (ctx && typeof code === 'string') ctx.networkError = code;
      countRequest(ctx, String(code ?? 'error'));
      throw err;
    }
  };
}

interface AcmeSettings {
  retryMaxAttempts: number;
  retryDefaultDelay: number;
}

/** Runs `fn` in a fresh call context that records problems and counts requests. */
export function withAcmeContext<T>(fn: (ctx: AcmeCallContext) => Promise<T>): Promise<T> {
  const ctx: AcmeCallContext = { problems: [], step: 'directory' };
  return context.run(ctx, () => fn(ctx));
}

/** Total ACME requests made so far (for benchmarks and tests). */
export function totalAcmeRequests(): number {
  let n = 0;
  for (const v of acmeRequestCounts.values()) n += v;
  return n;
}

function countRequest(ctx: AcmeCallContext | undefined, outcome: string): void {
  const key = `${ctx?.step ?? 'other'} ${outcome}`;
  acmeRequestCounts.set(key, (acmeRequestCounts.get(key) ?? 0) + 1);
}

function record(resp: AxiosResponse): void {
  const ctx = context.getStore();
  countRequest(ctx, String(resp.status));
  if (resp.status < 400) return;
  const data: unknown = resp.data;
  const body = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  const header = resp.headers?.['retry-after'] as string | undefined;
  const retryAfter = parseRetryAfter(header);
  ctx?.problems.push({
    type: typeof body.type === 'string' ? body.type : '',
    detail: typeof body.detail === 'string' ? body.detail : '',
    status: resp.status,
    ...(retryAfter !== undefined && { retryAfter }),
  });
}

/** RFC 9110 §10.2.3: delay-seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}
