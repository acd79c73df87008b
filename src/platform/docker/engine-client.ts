/**
 * A small client for the Docker Engine API over its UNIX socket: a timeout
 * on every call, bounded retries with backoff for transient failures, errors
 * as SidecarError with codes (like the Cattle client), and the event stream.
 * Only the calls the Docker platform needs; unversioned paths, so the
 * daemon's own API version answers (the fields read exist since API 1.24).
 */
import type { Readable } from 'node:stream';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import { SidecarError } from '../../domain/errors.js';
import type { Logger } from '../../util/log.js';
import { API_AXIOS_DEFAULTS, apiRequest, statusCode } from '../api-request.js';
import { parseJson, truncate } from '../json-response.js';

/**
 * Every Engine API call this client makes, and why: what a socket proxy in
 * front of the engine must allow, and all it needs to (docs/platforms.md's
 * table is generated from this; test/unit/docker-engine-calls.test.ts
 * records what the client really sends and compares).
 */
export const ENGINE_API_CALLS: readonly {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly why: string;
}[] = [
  {
    method: 'GET',
    path: '/containers/json',
    why: 'Discovery: every container (`all=1`), with its labels and state.',
  },
  {
    method: 'GET',
    path: '/containers/{id}/json',
    why: 'One container: its environment (`DOCKER_ENV_HOSTNAMES`) and when it stopped.',
  },
  {
    method: 'POST',
    path: '/containers/{id}/kill',
    why: '`DOCKER_RELOAD_SIGNAL` (`?signal=HUP`) to containers labelled `DOCKER_RELOAD_LABEL`.',
  },
  {
    method: 'GET',
    path: '/events',
    why: 'The event stream, filtered to container `start`, `die` and `destroy`.',
  },
];

export interface DockerEngineClientOptions {
  /** Absolute path of the engine's UNIX socket, e.g. /var/run/docker.sock. */
  readonly socketPath: string;
  /** Per request, and for the event stream to answer. */
  readonly timeoutMs: number;
  /** Attempts per request for transient failures (default 3). */
  readonly attempts?: number;
  /** Base delay of the retry backoff in ms (default 300). */
  readonly backoffMs?: number;
  readonly log: Logger;
  /** Told of every request's outcome: HTTP status or error code (metrics). */
  readonly onRequest?: (method: string, status: string) => void;
}

/** One item of `GET /containers/json?all=1` (the fields we read). */
export interface ContainerSummary {
  readonly Id: string;
  readonly Names?: readonly string[];
  readonly Labels?: Readonly<Record<string, unknown>> | null;
  /** created, restarting, running, removing, paused, exited, dead. */
  readonly State?: string;
  /** Unix seconds. */
  readonly Created?: number;
}

/** `GET /containers/{id}/json` (the fields we read). */
export interface ContainerInspect {
  readonly Id: string;
  readonly Name?: string;
  readonly Config?: { readonly Env?: readonly string[] | null } | null;
  readonly State?: {
    readonly Status?: string;
    readonly Running?: boolean;
    /** RFC 3339; `0001-01-01T00:00:00Z` when never stopped. */
    readonly FinishedAt?: string;
  } | null;
}

/** One line of `GET /events` (the fields we read). */
export interface EngineEvent {
  readonly Type?: string;
  readonly Action?: string;
  readonly id?: string;
  readonly Actor?: { readonly ID?: string; readonly Attributes?: Record<string, unknown> };
  /** Unix nanoseconds. */
  readonly timeNano?: number;
}

/** Container ids are 64 hex digits; names as Docker allows them. Checked before they enter a URL. */
const CONTAINER_REF = /^(?:[0-9a-f]{12,64}|[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254})$/;
/** Signals a reload may send. */
export const RELOAD_SIGNALS = ['HUP', 'USR1', 'USR2'] as const;
export type ReloadSignal = (typeof RELOAD_SIGNALS)[number];

const TRANSIENT_NET = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ENOENT', // the socket is gone while the daemon restarts
  'EPIPE',
]);

/** Largest event line kept; the engine's lines are a few hundred bytes. */
const MAX_EVENT_LINE = 1024 * 1024;

export class DockerEngineClient {
  private readonly http: AxiosInstance;

  constructor(private readonly opts: DockerEngineClientOptions) {
    this.http = axios.create({
      socketPath: opts.socketPath,
      // The host part is ignored on a UNIX socket; Docker wants a Host header.
      baseURL: 'http://docker',
      timeout: opts.timeoutMs,
      ...API_AXIOS_DEFAULTS,
    });
  }

  get socketPath(): string {
    return this.opts.socketPath;
  }

  async request<T>(
    method: 'GET' | 'POST',
    path: string,
    query: Record<string, string> = {},
  ): Promise<T | undefined> {
    const qs = new URLSearchParams(query).toString();
    const url = qs ? `${path}?${qs}` : path;
    const what = `${method} ${path}`;
    return apiRequest(
      {
        what,
        method,
        send: () =>
          this.http.request<string>({
            method,
            url,
            signal: AbortSignal.timeout(this.opts.timeoutMs),
          }),
        ok: (resp) => (resp.data === '' ? undefined : parseJson<T>(resp, what)),
        statusError: (resp) => statusError(resp, what),
        networkError: (err) => networkError(err, what, this.opts.timeoutMs, this.opts.socketPath),
      },
      {
        attempts: this.opts.attempts,
        log: this.opts.log,
        onRequest: this.opts.onRequest,
        backoffMs: this.opts.backoffMs ?? 300,
        retryMessage: 'Docker Engine API request failed; retrying',
      },
    );
  }

  /** Every container, running or not, or those matching `filters` (Docker's filter syntax). */
  async listContainers(filters?: Record<string, string[]>): Promise<ContainerSummary[]> {
    const list = await this.request<unknown>('GET', '/containers/json', {
      all: '1',
      ...(filters && { filters: JSON.stringify(filters) }),
    });
    if (!Array.isArray(list)) {
      throw new SidecarError(
        'PLATFORM_BAD_RESPONSE',
        'GET /containers/json: expected an array of containers',
        { retryable: true },
      );
    }
    return list.filter(
      (c): c is ContainerSummary =>
        !!c &&
        typeof c === 'object' &&
        typeof (c as { Id?: unknown }).Id === 'string' &&
        /^[0-9a-f]{64}$/.test((c as { Id: string }).Id),
    );
  }

  /** A container's details; undefined if it no longer exists. */
  async inspect(id: string): Promise<ContainerInspect | undefined> {
    checkRef(id);
    try {
      const c = await this.request<ContainerInspect>('GET', `/containers/${id}/json`);
      return c && typeof c === 'object' ? c : undefined;
    } catch (err) {
      if (err instanceof SidecarError && err.code === 'PLATFORM_NOT_FOUND') return undefined;
      throw err;
    }
  }

  /**
   * `POST /containers/{id}/kill?signal=...`: what `docker kill -s HUP` does.
   * False if the container is not running (any more): nothing to reload.
   */
  async signal(id: string, signal: ReloadSignal): Promise<boolean> {
    checkRef(id);
    try {
      await this.request('POST', `/containers/${id}/kill`, { signal });
      return true;
    } catch (err) {
      // 409: "container ... is not running"; 404: removed meanwhile.
      if (err instanceof SidecarError && /: HTTP 409\b/.test(err.message)) return false;
      if (err instanceof SidecarError && err.code === 'PLATFORM_NOT_FOUND') return false;
      throw err;
    }
  }

  /**
   * Opens `GET /events` with `filters` and calls `onEvent` for each event
   * until the stream ends. Resolves when the engine closes it (or `signal`
   * aborts); rejects if it cannot be opened. The stream has no idle timeout
   * (quiet hours are normal), only a deadline for the engine to answer.
   */
  async streamEvents(
    filters: Record<string, string[]>,
    onEvent: (e: EngineEvent) => void,
    signal: AbortSignal,
    onOpen?: () => void,
  ): Promise<void> {
    const what = 'GET /events';
    const answer = new AbortController();
    const both = AbortSignal.any([signal, answer.signal]);
    const timer = setTimeout(() => answer.abort(), this.opts.timeoutMs);
    let resp: AxiosResponse<Readable>;
    try {
      resp = await this.http.request<Readable>({
        method: 'GET',
        url: `/events?${new URLSearchParams({ filters: JSON.stringify(filters) }).toString()}`,
        responseType: 'stream',
        timeout: 0,
        signal: both,
        transformResponse: undefined,
      });
    } catch (err) {
      if (signal.aborted) return;
      throw networkError(err, what, this.opts.timeoutMs, this.opts.socketPath);
    } finally {
      clearTimeout(timer);
    }
    this.opts.onRequest?.('GET', String(resp.status));
    if (resp.status !== 200) {
      resp.data.destroy();
      throw statusError({ ...resp, data: '' } as AxiosResponse<string>, what);
    }
    onOpen?.();
    await new Promise<void>((resolve) => {
      let buf = '';
      const stream = resp.data;
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        buf += chunk;
        for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line === '') continue;
          try {
            const e = JSON.parse(line) as unknown;
            if (e && typeof e === 'object') onEvent(e as EngineEvent);
          } catch {
            this.opts.log.warn('ignoring an unreadable Docker event', { bytes: line.length });
          }
        }
        if (buf.length > MAX_EVENT_LINE) {
          this.opts.log.warn('Docker event line too long; reconnecting', { bytes: buf.length });
          stream.destroy();
        }
      });
      // Reconnections must not pile listeners up on the long-lived signal.
      const abort = (): void => {
        stream.destroy();
      };
      const done = (): void => {
        signal.removeEventListener('abort', abort);
        resolve();
      };
      stream.once('end', done);
      stream.once('close', done);
      stream.once('error', done);
      if (signal.aborted) abort();
      else signal.addEventListener('abort', abort, { once: true });
    });
  }
}

function checkRef(ref: string): void {
  if (!CONTAINER_REF.test(ref)) {
    throw new SidecarError(
      'PLATFORM_REJECTED',
      `not a container id or name: ${JSON.stringify(ref.slice(0, 80))}`,
    );
  }
}

function statusError(resp: AxiosResponse<string>, what: string): SidecarError {
  let detail = '';
  try {
    const body = JSON.parse(resp.data) as { message?: unknown };
    if (typeof body.message === 'string') detail = truncate(body.message, 200);
  } catch {
    detail = truncate(String(resp.data ?? ''), 120);
  }
  const code = statusCode(resp.status);
  return new SidecarError(code, `${what}: HTTP ${resp.status}${detail ? ` ${detail}` : ''}`, {
    retryable: code === 'PLATFORM_UNAVAILABLE',
  });
}

function networkError(
  err: unknown,
  what: string,
  timeoutMs: number,
  socketPath: string,
): SidecarError {
  const code = String((err as { code?: unknown }).code ?? '');
  const message = ((err as Error).message ?? String(err)).slice(0, 300);
  if (
    code === 'ECONNABORTED' ||
    code === 'ETIMEDOUT' ||
    code === 'ERR_CANCELED' ||
    /timeout|aborted/i.test(message)
  ) {
    return new SidecarError('PLATFORM_UNAVAILABLE', `${what}: no answer within ${timeoutMs} ms`, {
      retryable: true,
    });
  }
  if (code === 'ERR_FR_MAX_BODY_LENGTH_EXCEEDED' || /maxContentLength/.test(message)) {
    return new SidecarError('PLATFORM_BAD_RESPONSE', `${what}: response too large`);
  }
  const hint =
    code === 'ENOENT' || code === 'ECONNREFUSED'
      ? ` (is the Docker socket ${socketPath} mounted, and dockerd running?)`
      : code === 'EACCES'
        ? ` (no permission on ${socketPath})`
        : '';
  return new SidecarError(
    code === 'EACCES' ? 'PLATFORM_UNAUTHORIZED' : 'PLATFORM_UNAVAILABLE',
    `${what}: ${TRANSIENT_NET.has(code) || code === 'EACCES' ? code : message}${hint}`,
    { retryable: code !== 'EACCES' },
  );
}
