import { AsyncLocalStorage } from 'node:async_hooks';
import https from 'node:https';
import tls from 'node:tls';
import acme from 'acme-client';
import type { AxiosError, AxiosResponse } from 'axios';

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

/** Configures acme-client's shared axios instance once for the process. */
export function configureAcmeHttp(opts: AcmeHttpOptions): void {
  const ax = acme.axios;
  ax.defaults.timeout = opts.timeoutMs;
  ax.defaults.proxy = false;
  ax.defaults.httpsAgent = new https.Agent({
    keepAlive: true,
    ...(opts.caBundlePem && { ca: [...tls.rootCertificates, opts.caBundlePem] }),
  });
  if (installed) return;
  installed = true;
  ax.interceptors.response.use(
    (resp: AxiosResponse) => {
      record(resp);
      return resp;
    },
    (err: AxiosError) => {
      if (err.response) record(err.response);
      return Promise.reject(err);
    },
  );
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

function record(resp: AxiosResponse): void {
  const ctx = context.getStore();
  const key = `${ctx?.step ?? 'other'} ${resp.status}`;
  acmeRequestCounts.set(key, (acmeRequestCounts.get(key) ?? 0) + 1);
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
