import { AsyncLocalStorage } from 'node:async_hooks';
import https from 'node:https';
import tls from 'node:tls';
import acme from 'acme-client';
import axios, { type AxiosResponse, type InternalAxiosRequestConfig } from 'axios';
import { systemClock } from '../lifecycle/clock.js';

/** An RFC 8555 §6.7 problem document, as the CA sent it. */
export interface AcmeProblem {
  /**
   * 'response': the CA answered a request with a problem document (§6.7).
   * 'validation': a challenge or authorization came back invalid with an
   * `error` (§7.1.4, §8): the CA could not validate our answer.
   */
  readonly source: 'response' | 'validation';
  readonly type: string;
  readonly detail: string;
  readonly status: number;
  /** Seconds from a Retry-After header, when the CA sent one. */
  readonly retryAfter?: number;
  /** For 'validation': the hostname the CA was validating, when it said. */
  readonly identifier?: string;
}

/** One request to the CA as a person needs it to act on a failure: what was asked, what came back. */
export interface AcmeExchange {
  readonly method: string;
  readonly url: string;
  /** HTTP status of the answer; absent when none came. */
  readonly status?: number;
  /** Network or TLS error code when no answer came (ECONNREFUSED, DEPTH_ZERO_SELF_SIGNED_CERT...). */
  readonly code?: string;
  /** Node's words for that failure ("connect ECONNREFUSED 127.0.0.1:1"). */
  readonly reason?: string;
  /** The request was cut by the per-request deadline, this long. */
  readonly timedOutAfterMs?: number;
  /** The answer was meant to be JSON and was not: its media type and size. */
  readonly notJson?: { readonly contentType: string; readonly bytes: number };
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
  /** The last request made, and how it ended. */
  last?: AcmeExchange;
  /**
   * Answers are final: acme-client's retries of 5xx are skipped. For a
   * request whose failure has a fallback of its own (a newOrder with
   * `replaces`, a renewalInfo GET).
   */
  noRetry?: boolean;
}
const context = new AsyncLocalStorage<AcmeCallContext>();

/** ACME requests made, keyed "<step> <HTTP status>" (nonce fetches included). */
export const acmeRequestCounts = new Map<string, number>();

export interface AcmeRequestEvent {
  readonly host: string;
  /** The issuance step (newOrder, finalize...): URLs carry ids, steps do not. */
  readonly step: string;
  readonly method: string;
  /** HTTP status, or the network error code. */
  readonly status: string;
  readonly seconds: number;
}
const requestListeners: ((e: AcmeRequestEvent) => void)[] = [];

/** Called after every ACME HTTP exchange (metrics). */
export function onAcmeRequest(listener: (e: AcmeRequestEvent) => void): void {
  requestListeners.push(listener);
}

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
    // One secure context for every connection: given `ca` instead, Node
    // rebuilds the whole trust store (system roots + ours) per connection,
    // about 20 ms of CPU each and memory held until GC (measured: 1.4 GB
    // peak RSS and 3x the CPU for 100 certificates, `npm run bench`).
    ...(opts.caBundlePem && {
      secureContext: tls.createSecureContext({ ca: [...tls.rootCertificates, opts.caBundlePem] }),
    }),
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
    const started = process.hrtime.bigint();
    // `timeout` only notices an idle socket; a CA dripping bytes forever
    // is cut by an overall deadline per request.
    config.signal ??= AbortSignal.timeout(opts.timeoutMs);
    const method = (config.method ?? 'get').toUpperCase();
    const url = config.url ?? '';
    const emit = (status: string) => {
      const event: AcmeRequestEvent = {
        host: hostOf(config.url),
        step: context.getStore()?.step ?? 'other',
        method,
        status,
        seconds: Number(process.hrtime.bigint() - started) / 1e9,
      };
      for (const l of requestListeners) l(event);
    };
    // acme-client's request interceptor makes every status "invalid", so
    // the inner adapter rejects even a 200, with the response attached:
    // whatever carries a response is an answer from the CA.
    const answered = (resp: AxiosResponse) => {
      emit(String(resp.status));
      record(resp, method, url);
      // A rate limit's Retry-After can be hours: acme-client would sleep
      // that long inside the request. Fail now; the backoff honours it.
      if (resp.status === 429 || context.getStore()?.noRetry) {
        (config as { retryAttempt?: number }).retryAttempt = settings.retryMaxAttempts;
      }
    };
    let resp: AxiosResponse;
    try {
      resp = await inner(config);
    } catch (err) {
      const response = (err as { response?: AxiosResponse }).response;
      if (response) {
        answered(response);
        throw err;
      }
      const code = networkCode(err);
      const ctx = context.getStore();
      if (ctx && code !== undefined) {
        ctx.networkError = code;
        const timedOut = code === 'ECONNABORTED' || code === 'ETIMEDOUT' || config.signal.aborted;
        ctx.last = {
          method,
          url,
          code,
          reason: err instanceof Error ? err.message : String(err),
          ...(timedOut && { timedOutAfterMs: opts.timeoutMs }),
        };
      }
      const raw = (err as { code?: unknown }).code;
      countRequest(ctx, String(raw ?? 'error'));
      emit(String(raw ?? 'error'));
      throw err;
    }
    answered(resp);
    return resp;
  };
}

/** The `error` of an invalid challenge, or of the first invalid challenge of an authorization. */
function invalidObjectError(
  body: Record<string, unknown>,
): { type: string; detail: string } | undefined {
  if (body.status !== 'invalid') return undefined;
  const candidates = [
    body,
    ...(Array.isArray(body.challenges) ? (body.challenges as unknown[]) : []),
  ];
  for (const c of candidates) {
    const err = (c as { error?: { type?: unknown; detail?: unknown } } | null)?.error;
    if (err && typeof err === 'object') {
      return {
        type: typeof err.type === 'string' ? err.type : '',
        detail: typeof err.detail === 'string' ? err.detail : '',
      };
    }
  }
  return undefined;
}

function hostOf(url: string | undefined): string {
  try {
    return new URL(url ?? '').host;
  } catch {
    return '';
  }
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

/**
 * The code of a request that got no answer: the network's or TLS's own
 * (axios puts it on its error, or on the error's cause). A deadline
 * (ERR_CANCELED from our AbortSignal) reads as ETIMEDOUT.
 */
function networkCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const inner = typeof e.cause?.code === 'string' ? e.cause.code : undefined;
  if (code === 'ERR_CANCELED') return 'ETIMEDOUT';
  return code === 'ERR_BAD_RESPONSE' || code === 'ERR_BAD_REQUEST' || code === undefined
    ? (inner ?? code)
    : code;
}

/** Bodies that are not JSON by design: the certificate chain (RFC 8555 §7.4.2). */
const NOT_JSON_TYPES = /^application\/pem-certificate-chain|^application\/pkix-cert/i;

function record(resp: AxiosResponse, method: string, url: string): void {
  const ctx = context.getStore();
  countRequest(ctx, String(resp.status));
  // The adapter sees the body before axios parses it (transformResponse
  // runs after the adapter): parse JSON here.
  let data: unknown = resp.data;
  let notJson: AcmeExchange['notJson'];
  const contentType = String(resp.headers?.['content-type'] ?? '');
  if (typeof data === 'string' || Buffer.isBuffer(data)) {
    const text = data.toString();
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
      // HEAD answers (newNonce) and 204s have no body to parse.
      if (text !== '' && !NOT_JSON_TYPES.test(contentType)) {
        notJson = {
          contentType: contentType.split(';')[0] || 'no media type',
          bytes: Buffer.byteLength(text),
        };
      }
    }
  }
  if (ctx) ctx.last = { method, url, status: resp.status, ...(notJson && { notJson }) };
  const body = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  if (resp.status < 400) {
    const error = invalidObjectError(body);
    const identifier = (body.identifier as { value?: unknown } | undefined)?.value;
    if (error) {
      ctx?.problems.push({
        source: 'validation',
        status: resp.status,
        ...error,
        ...(typeof identifier === 'string' && { identifier }),
      });
    }
    return;
  }
  const header = resp.headers?.['retry-after'] as string | undefined;
  const retryAfter = parseRetryAfter(header);
  ctx?.problems.push({
    source: 'response',
    type: typeof body.type === 'string' ? body.type : '',
    detail: typeof body.detail === 'string' ? body.detail : '',
    status: resp.status,
    ...(retryAfter !== undefined && { retryAfter }),
  });
}

/** RFC 9110 §10.2.3: delay-seconds or an HTTP date. */
export function parseRetryAfter(
  value: string | undefined,
  now = systemClock.now().getTime(),
): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}
