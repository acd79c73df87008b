/**
 * The scaffold both of the sidecar's HTTP servers share (the status server
 * on TCP, the control socket on UNIX): request limits against slow or stuck
 * clients, the request's path, and a close that does not wait forever.
 * Routes, replies and listening are each server's own.
 */
import http from 'node:http';

export interface ServerTimeouts {
  /** Whole request head received within. */
  readonly headersMs: number;
  /** Whole request (head and body) received within. */
  readonly requestMs: number;
}

const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Grace for in-flight responses on close before their sockets are cut. */
const CLOSE_GRACE_MS = 2_000;

/**
 * An http.Server with those limits; `handle` gets the method and the URL's
 * path (no query; '' when the URL does not parse).
 */
export function createServer(
  timeouts: ServerTimeouts,
  handle: (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    method: string,
    pathname: string,
  ) => void,
): http.Server {
  return http.createServer(
    {
      headersTimeout: timeouts.headersMs,
      requestTimeout: timeouts.requestMs,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      // Node checks the two timeouts above only this often (30 s by default).
      connectionsCheckingInterval: Math.min(1_000, Math.ceil(timeouts.headersMs / 4)),
    },
    (req, res) => {
      let pathname: string;
      try {
        pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
      } catch {
        pathname = '';
      }
      handle(req, res, req.method ?? 'GET', pathname);
    },
  );
}

/**
 * Stops accepting, closes idle keep-alive connections, and resolves once
 * all are gone. Keep-alive sockets that were busy become idle when their
 * response ends; anything still open after the grace is cut.
 */
export function closeServer(server: http.Server): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeIdleConnections();
    const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
    cut.unref();
    server.once('close', () => clearTimeout(cut));
  });
}
