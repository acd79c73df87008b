import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock } from '../lifecycle/clock.js';
import { closeServer, createServer } from '../util/http-server.js';
import { cleanMessage } from '../util/redact.js';
import { renderStatusPage } from './page.js';
import type { StatusSnapshot } from '../domain/status.js';

/**
 * The sidecar's read-only HTTP surface: probes, `/status` (JSON), the
 * status page and, when given, `/metrics`. Nothing here changes state, so
 * only GET and HEAD are accepted.
 */
export interface HttpServerOptions {
  /** Bind address. Loopback unless the platform's probes need more. */
  readonly host: string;
  /** 0 picks a free port; the chosen one is returned. */
  readonly port: number;
  readonly status: () => StatusSnapshot;
  readonly ready: () => { ok: boolean; reasons: string[] };
  readonly metrics?: () => Promise<{ contentType: string; body: string }>;
  readonly log?: {
    info(m: string, f?: object): void;
    warn(m: string, f?: object): void;
  };
  /** Defaults suit probes: 10 s for headers, 15 s for a whole request. */
  readonly timeouts?: { readonly headersMs?: number; readonly requestMs?: number };
  /**
   * The daemon's clock (`() => clock.now()`); the page's "x minutes ago" is
   * relative to it. Default: the system clock.
   */
  readonly now?: () => Date;
}

export interface HttpServerHandle {
  readonly port: number;
  /** Stops accepting, closes idle keep-alive connections, and resolves once all are gone. */
  close(): Promise<void>;
}

/** Applied to every response. */
const COMMON_HEADERS = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

/**
 * The page has no script, loads nothing, and may not be framed. The first
 * two directives are what the page needs; the rest close what `default-src`
 * does not cover.
 */
export const PAGE_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** For everything that is not the page: nothing at all may load. */
const DATA_CSP = "default-src 'none'; frame-ancestors 'none'";

const TEXT = 'text/plain; charset=utf-8';

/** Slowloris and stuck clients: a probe that takes longer is a failed probe anyway. */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 15_000;

interface Reply {
  status: number;
  type: string;
  body: string;
  headers?: Record<string, string>;
}

export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServerHandle> {
  const now = opts.now ?? (() => systemClock.now());
  const headersTimeout = opts.timeouts?.headersMs ?? HEADERS_TIMEOUT_MS;
  const requestTimeout = Math.max(opts.timeouts?.requestMs ?? REQUEST_TIMEOUT_MS, headersTimeout);

  async function route(method: string, pathname: string): Promise<Reply> {
    const metrics = opts.metrics;
    const known = ['/', '/healthz', '/readyz', '/status', ...(metrics ? ['/metrics'] : [])];
    if (!known.includes(pathname)) {
      return { status: 404, type: TEXT, body: 'not found\n' };
    }
    if (method !== 'GET' && method !== 'HEAD') {
      return {
        status: 405,
        type: TEXT,
        body: 'method not allowed: this surface is read-only\n',
        headers: { Allow: 'GET, HEAD' },
      };
    }
    switch (pathname) {
      case '/healthz':
        return { status: 200, type: TEXT, body: 'ok' };
      case '/readyz': {
        const r = opts.ready();
        return r.ok
          ? { status: 200, type: TEXT, body: 'ready\n' }
          : {
              status: 503,
              type: TEXT,
              // Reasons quote discovery and store errors from outside: cleaned as in /status.
              body: `not ready\n${r.reasons.map((x) => `- ${cleanMessage(x)}\n`).join('')}`,
            };
      }
      case '/status':
        return {
          status: 200,
          type: 'application/json; charset=utf-8',
          body: `${JSON.stringify(opts.status(), null, 2)}\n`,
        };
      case '/metrics': {
        if (!metrics) return { status: 404, type: TEXT, body: 'not found\n' };
        const m = await metrics();
        return { status: 200, type: m.contentType, body: m.body };
      }
      default:
        return {
          status: 200,
          type: 'text/html; charset=utf-8',
          body: renderStatusPage(opts.status(), now()),
          headers: { 'Content-Security-Policy': PAGE_CSP },
        };
    }
  }

  const server = createServer(
    { headersMs: headersTimeout, requestMs: requestTimeout },
    (_req, res, method, pathname) => {
      route(method, pathname)
        .catch((err: unknown) => {
          // The cause goes to the log, not to whoever asked.
          opts.log?.warn('http handler failed', {
            component: 'http',
            path: pathname,
            error: err instanceof Error ? err.message : String(err),
          });
          return { status: 500, type: TEXT, body: 'internal error\n' } satisfies Reply;
        })
        .then((r) => send(res, method, r))
        // Only a malformed header (say, a bad metrics content type) gets here.
        .catch((err: unknown) => {
          opts.log?.warn('http response failed', {
            component: 'http',
            path: pathname,
            error: err instanceof Error ? err.message : String(err),
          });
          res.destroy();
        });
    },
  );
  // A socket silent for this long (mid-request or between keep-alive requests) is dropped.
  server.timeout = requestTimeout;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen({ host: opts.host, port: opts.port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => opts.log?.warn('http server error', { error: err.message }));
  const port = (server.address() as AddressInfo).port;
  opts.log?.info('http server listening', { component: 'http', host: opts.host, port });

  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= closeServer(server);
      return closing;
    },
  };
}

function send(res: http.ServerResponse, method: string, r: Reply): void {
  const body = Buffer.from(r.body, 'utf8');
  res.writeHead(r.status, {
    ...COMMON_HEADERS,
    'Content-Security-Policy': DATA_CSP,
    ...r.headers,
    'Content-Type': r.type,
    'Content-Length': String(body.length),
  });
  // HEAD: same headers, no body.
  res.end(method === 'HEAD' ? undefined : body);
}
