import { AsyncLocalStorage } from 'node:async_hooks';
import https from 'node:https';
import { contextTrusting } from '../util/trust.js';
import * as acme from './acme-client.js';
import axios, { type AxiosResponse, type InternalAxiosRequestConfig } from 'axios';
import { systemClock } from '../lifecycle/clock.js';
import { NoncePool } from './nonce-pool.js';

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
  /** Seconds from the answer's Retry-After, when it had one (when to poll again, RFC 8555 §7.5.1). */
  readonly retryAfterS?: number;
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

/**
 * ACME requests made, keyed "<kind> <HTTP status or network code>", counted
 * once per exchange at the HTTP boundary (acme-client's retries included).
 * The kind is the issuance step (newOrder, finalize...), or `newNonce` for
 * every nonce HEAD whatever step needed it.
 */
export const acmeRequestCounts = new Map<string, number>();

/** Nonces the CA's answers carried, used before a HEAD newNonce (RFC 8555 §7.2). */
export const noncePool = new NoncePool();

export interface AcmeRequestEvent {
  readonly host: string;
  /**
   * The kind of request: the issuance step (newOrder, finalize...; URLs
   * carry ids, steps do not), or `newNonce` for a nonce HEAD.
   */
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
/** The latest configureAcmeHttp options: the adapter reads these on every request. */
let current: AcmeHttpOptions = { timeoutMs: 30_000 };

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
  current = opts;
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
      secureContext: contextTrusting([opts.caBundlePem]),
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
    const { timeoutMs } = current;
    config.signal ??= AbortSignal.timeout(timeoutMs);
    const method = (config.method ?? 'get').toUpperCase();
    const url = config.url ?? '';
    const kind = method === 'HEAD' ? 'newNonce' : (context.getStore()?.step ?? 'other');
    const emit = (status: string) => {
      const key = `${kind} ${status}`;
      acmeRequestCounts.set(key, (acmeRequestCounts.get(key) ?? 0) + 1);
      const event: AcmeRequestEvent = {
        host: hostOf(config.url),
        step: kind,
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
      const body = record(resp, method, url);
      // RFC 8555 §7.2: keep every answer's nonce, except where acme-client
      // uses it itself: a HEAD's (getNonce returns it) and a badNonce
      // answer's (§6.5: signedRequest resends with it).
      if (method !== 'HEAD' && body.type !== BAD_NONCE) {
        noncePool.put(url, resp.headers?.['replay-nonce']);
      }
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
          ...(timedOut && { timedOutAfterMs: timeoutMs }),
        };
      }
      const raw = (err as { code?: unknown }).code;
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

/** Calls of withAcmeContext under way. */
let contexts = 0;

/**
 * Runs `fn` in a fresh call context that records problems and counts
 * requests. When the last one under way ends, the context is disabled: on
 * Node 20, AsyncLocalStorage runs a hook on every promise of the process
 * while it is enabled (`run` enables it again), which cost an idle pass
 * (no ACME request) a measurable share of its CPU after the first pass had
 * asked renewalInfo. Node 24 propagates the context without hooks.
 */
export function withAcmeContext<T>(fn: (ctx: AcmeCallContext) => Promise<T>): Promise<T> {
  const ctx: AcmeCallContext = { problems: [], step: 'directory' };
  contexts++;
  const done = () => {
    if (--contexts === 0) context.disable();
  };
  let p: Promise<T>;
  try {
    p = context.run(ctx, () => fn(ctx));
  } catch (err) {
    done();
    throw err;
  }
  return p.finally(done);
}

/** Total ACME requests made so far (for benchmarks and tests). */
export function totalAcmeRequests(): number {
  let n = 0;
  for (const v of acmeRequestCounts.values()) n += v;
  return n;
}

const BAD_NONCE = 'urn:ietf:params:acme:error:badNonce';

/** The parts of acme-client's HttpClient (not in its typings) the nonce pool replaces. */
interface NonceHttp {
  directoryUrl: string;
  getNonce(): Promise<string>;
}

/**
 * Makes `client` take its nonces from the pool, sending a HEAD to newNonce
 * only when the pool holds none for its CA. acme-client's HttpClient asks
 * `getNonce()` for every signed request without a nonce; only that method
 * is replaced, on this instance.
 */
export function usePooledNonces<C extends object>(client: C): C {
  const http = (client as unknown as { http?: NonceHttp }).http;
  if (!http || typeof http.getNonce !== 'function') return client;
  const fetchNonce = http.getNonce.bind(http);
  http.getNonce = () => {
    const pooled = noncePool.take(http.directoryUrl);
    return pooled !== undefined ? Promise.resolve(pooled) : fetchNonce();
  };
  return client;
}

/** The part of acme-client's HttpClient (not in its typings) that reads the directory. */
interface DirectoryHttp {
  getDirectory(): Promise<Record<string, unknown>>;
}

/**
 * Makes `client` fetch its CA's directory once however many callers ask at
 * the same time. acme-client caches the directory only once an answer is
 * in, so a pass that starts several certificates together (4 in flight)
 * sent one GET per certificate before the first came back. Replaces only
 * `getDirectory`, on this instance; a failed fetch is not kept.
 */
export function useSharedDirectory<C extends object>(client: C): C {
  const http = (client as unknown as { http?: DirectoryHttp }).http;
  if (!http || typeof http.getDirectory !== 'function') return client;
  const fetchDirectory = http.getDirectory.bind(http);
  let inFlight: Promise<Record<string, unknown>> | undefined;
  http.getDirectory = () => {
    inFlight ??= fetchDirectory().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };
  return client;
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

/** Records what the answer says (problems, the last exchange) and returns its parsed JSON body. */
function record(resp: AxiosResponse, method: string, url: string): Record<string, unknown> {
  const ctx = context.getStore();
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
  const retryAfterS = parseRetryAfter(resp.headers?.['retry-after'] as string | undefined);
  if (ctx) {
    ctx.last = {
      method,
      url,
      status: resp.status,
      ...(notJson && { notJson }),
      ...(retryAfterS !== undefined && { retryAfterS }),
    };
  }
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
    return body;
  }
  const retryAfter = retryAfterS;
  ctx?.problems.push({
    source: 'response',
    type: typeof body.type === 'string' ? body.type : '',
    detail: typeof body.detail === 'string' ? body.detail : '',
    status: resp.status,
    ...(retryAfter !== undefined && { retryAfter }),
  });
  return body;
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
