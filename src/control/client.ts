import http from 'node:http';
import type { StatusSnapshot } from '../domain/status.js';
import { termSafe } from './format.js';
import { ROUTES, type RenewResult, type RenewTarget } from './protocol.js';

/** Status answers at once; a renewal orders certificates, one CA round trip at a time. */
export const STATUS_TIMEOUT_MS = 10_000;
export const RENEW_TIMEOUT_MS = 11 * 60_000;
/** A status document for thousands of certificates is still far below this. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

export type ControlClientErrorCode =
  /** Nothing listens at the path: the daemon is not running (or uses another STATE_DIR). */
  | 'NO_DAEMON'
  /** The socket is there but its mode keeps this user out. */
  | 'PERMISSION'
  /** The daemon did not answer in time. */
  | 'TIMEOUT'
  /** The daemon answered with an error; `status` and `serverCode` say which. */
  | 'REQUEST_FAILED'
  /** The answer was not the JSON expected, or too large. */
  | 'BAD_RESPONSE'
  /** Connecting to the socket failed for another reason, named in the message. */
  | 'CONNECT_FAILED';

/** Every message says what to do, and is safe to print to a terminal. */
export class ControlClientError extends Error {
  readonly code: ControlClientErrorCode;
  /** HTTP status, for `REQUEST_FAILED`. */
  readonly status?: number;
  /** The daemon's error code (`NOT_FOUND`, ...), for `REQUEST_FAILED`. */
  readonly serverCode?: string;

  constructor(
    code: ControlClientErrorCode,
    message: string,
    extra: { status?: number; serverCode?: string; cause?: unknown } = {},
  ) {
    super(termSafe(message), extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'ControlClientError';
    this.code = code;
    if (extra.status !== undefined) this.status = extra.status;
    if (extra.serverCode !== undefined) this.serverCode = extra.serverCode;
  }
}

/** Turns a failed connect into what the operator should do about it. */
export function describeConnectError(err: unknown, socketPath: string): ControlClientError {
  const errno = (err as { code?: unknown } | null)?.code;
  const notRunning = 'is `acme-sidecar run` running?';
  switch (errno) {
    case 'ENOENT':
      return new ControlClientError(
        'NO_DAEMON',
        `${notRunning} no socket at ${socketPath} (it is STATE_DIR/control.sock: run this with the daemon's STATE_DIR)`,
        { cause: err },
      );
    case 'ECONNREFUSED':
      return new ControlClientError(
        'NO_DAEMON',
        `${notRunning} no socket at ${socketPath} answers (a stale socket file; the daemon replaces it when it starts)`,
        { cause: err },
      );
    case 'EACCES':
    case 'EPERM':
      return new ControlClientError(
        'PERMISSION',
        `permission denied on ${socketPath}: run as the sidecar's user (e.g. \`docker exec\` into its container)`,
        { cause: err },
      );
    default:
      return new ControlClientError(
        'CONNECT_FAILED',
        `cannot connect to ${socketPath}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
  }
}

/**
 * One request on the control socket; resolves to the parsed JSON body of a
 * 2xx answer. Everything else rejects with a {@link ControlClientError}.
 */
export function controlRequest(
  socketPath: string,
  method: 'GET' | 'POST',
  route: string,
  body?: unknown,
  opts: { timeoutMs?: number } = {},
): Promise<unknown> {
  const timeoutMs = opts.timeoutMs ?? STATUS_TIMEOUT_MS;
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
  return new Promise<unknown>((resolve, reject) => {
    let connected = false;
    const req = http.request({
      socketPath,
      method,
      path: route,
      // Not used for routing over a UNIX socket, but HTTP/1.1 requires one.
      headers: {
        Host: 'localhost',
        Accept: 'application/json',
        Connection: 'close',
        ...(payload && {
          'Content-Type': 'application/json',
          'Content-Length': String(payload.length),
        }),
      },
      agent: false,
    });
    const fail = (e: ControlClientError) => {
      clearTimeout(timer);
      req.destroy();
      reject(e);
    };
    // A deadline for the whole exchange, not an idle timeout: a daemon that
    // trickles bytes must not hold the terminal forever.
    const timer = setTimeout(
      () =>
        fail(
          new ControlClientError(
            'TIMEOUT',
            connected
              ? `${socketPath}: no answer within ${Math.round(timeoutMs / 1000)} s; the daemon may still be working: check \`acme-sidecar status\``
              : `${socketPath}: could not connect within ${Math.round(timeoutMs / 1000)} s; is the daemon stuck?`,
          ),
        ),
      timeoutMs,
    );
    req.on('socket', (s) => s.once('connect', () => (connected = true)));
    req.on('error', (err) => {
      if (!connected) fail(describeConnectError(err, socketPath));
      else
        fail(
          new ControlClientError(
            'BAD_RESPONSE',
            `${socketPath}: the connection failed: ${err.message}; is the daemon restarting?`,
            { cause: err },
          ),
        );
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_RESPONSE_BYTES) {
          fail(new ControlClientError('BAD_RESPONSE', `${socketPath}: the answer is too large`));
          return;
        }
        chunks.push(c);
      });
      res.on('error', (err) =>
        fail(
          new ControlClientError('BAD_RESPONSE', `${socketPath}: ${err.message}`, { cause: err }),
        ),
      );
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          reject(
            new ControlClientError(
              'BAD_RESPONSE',
              `${socketPath} answered ${res.statusCode ?? '?'} with something that is not JSON; is it an acme-sidecar control socket?`,
            ),
          );
          return;
        }
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          resolve(parsed);
          return;
        }
        const e = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
        const serverCode = typeof e?.code === 'string' ? e.code : 'UNKNOWN';
        const message = typeof e?.message === 'string' ? e.message : `HTTP ${status}`;
        reject(new ControlClientError('REQUEST_FAILED', message, { status, serverCode }));
      });
    });
    req.end(payload);
  });
}

/** `GET /v1/status`. */
export async function fetchStatus(
  socketPath: string,
  opts: { timeoutMs?: number } = {},
): Promise<StatusSnapshot> {
  const body = await controlRequest(socketPath, 'GET', ROUTES.status, undefined, opts);
  if (!Array.isArray((body as { certificates?: unknown } | null)?.certificates)) {
    throw new ControlClientError('BAD_RESPONSE', `${socketPath}: the status has no certificates`);
  }
  return body as StatusSnapshot;
}

/** `POST /v1/renew`: forces a renewal attempt now (the CA's rate limits still apply). */
export async function requestRenew(
  socketPath: string,
  target: RenewTarget,
  opts: { timeoutMs?: number } = {},
): Promise<RenewResult[]> {
  const body = await controlRequest(socketPath, 'POST', ROUTES.renew, target, {
    timeoutMs: opts.timeoutMs ?? RENEW_TIMEOUT_MS,
  });
  const results = (body as { results?: unknown } | null)?.results;
  if (!Array.isArray(results)) {
    throw new ControlClientError('BAD_RESPONSE', `${socketPath}: the answer has no results`);
  }
  return results as RenewResult[];
}
