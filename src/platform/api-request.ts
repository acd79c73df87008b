/**
 * What both platform API clients (Cattle over HTTP(S), the Docker Engine over
 * its socket) do around every request: an overall deadline, the outcome told
 * to metrics, errors as coded SidecarErrors, and bounded retries of the
 * transient ones through the one retry helper.
 */
import type { AxiosResponse, CreateAxiosDefaults } from 'axios';
import { SidecarError, type ErrorCode } from '../domain/errors.js';
import type { Logger } from '../util/log.js';
import { retry } from '../util/retry.js';

/**
 * The axios settings both clients share: JSON asked for and read as text
 * (parseJson), every status answered (statusError), no proxy or redirect,
 * and a cap against a huge or endless response.
 */
export const API_AXIOS_DEFAULTS = {
  headers: { Accept: 'application/json' },
  proxy: false,
  maxRedirects: 0,
  maxContentLength: 64 * 1024 * 1024,
  responseType: 'text',
  transformResponse: (d: unknown) => d,
  validateStatus: () => true,
} as const satisfies CreateAxiosDefaults;

export interface ApiRequest<T> {
  /** `METHOD /path`, for messages and logs. */
  readonly what: string;
  readonly method: string;
  /**
   * One try. Give it an overall deadline (`AbortSignal.timeout`): axios's
   * `timeout` only notices an idle socket, not a server dripping bytes forever.
   */
  readonly send: () => Promise<AxiosResponse<string>>;
  /** The value of a 2xx answer. */
  readonly ok: (resp: AxiosResponse<string>) => T;
  readonly statusError: (resp: AxiosResponse<string>) => SidecarError;
  /** For anything `send` threw that is not a SidecarError already. */
  readonly networkError: (err: unknown) => SidecarError;
}

export interface ApiClientOptions {
  /** Attempts per request for transient failures (default 3). */
  readonly attempts?: number;
  readonly log: Logger;
  /** Told of every request's outcome: HTTP status or error code (metrics). */
  readonly onRequest?: (method: string, status: string) => void;
}

/** Sends `req`, retrying what its errors mark retryable; logs `retryMessage` before each retry. */
export function apiRequest<T>(
  req: ApiRequest<T>,
  opts: ApiClientOptions & { readonly backoffMs: number; readonly retryMessage: string },
): Promise<T> {
  return retry(
    async () => {
      let failure: SidecarError;
      try {
        const resp = await req.send();
        opts.onRequest?.(req.method, String(resp.status));
        if (resp.status >= 200 && resp.status < 300) return req.ok(resp);
        failure = req.statusError(resp);
      } catch (err) {
        if (err instanceof SidecarError) throw err;
        failure = req.networkError(err);
        opts.onRequest?.(req.method, failure.code);
      }
      throw failure;
    },
    {
      attempts: opts.attempts ?? 3,
      backoff: { baseMs: opts.backoffMs },
      onRetry: (err, attempt) => {
        const failure = err as SidecarError;
        opts.log.warn(opts.retryMessage, {
          request: req.what,
          code: failure.code,
          error: failure.message,
          attempt,
        });
      },
    },
  );
}

/** The code of an HTTP error status; only PLATFORM_UNAVAILABLE (5xx, 429) is retried. */
export function statusCode(status: number): ErrorCode {
  return status === 401 || status === 403
    ? 'PLATFORM_UNAUTHORIZED'
    : status === 404
      ? 'PLATFORM_NOT_FOUND'
      : status >= 500 || status === 429
        ? 'PLATFORM_UNAVAILABLE'
        : 'PLATFORM_REJECTED';
}
