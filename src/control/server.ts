import { promises as fs, type Stats } from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import { basename, dirname, join } from 'node:path';
import { closeServer, createServer } from '../util/http-server.js';
import {
  HANDLER_ERROR_STATUS,
  ROUTES,
  type ControlHandlers,
  type ErrorBody,
  type RenewTarget,
} from './protocol.js';

export type {
  ControlHandlers,
  RenewResult,
  RenewTarget,
  RenewResponse,
  HandlerErrorCode,
} from './protocol.js';
export { ControlHandlerError } from './protocol.js';

export interface ControlServerOptions {
  /** Socket path, by default `STATE_DIR/control.sock`. */
  readonly path: string;
  readonly handlers: ControlHandlers;
  readonly log?: {
    info(m: string, f?: object): void;
    warn(m: string, f?: object): void;
  };
  /** Defaults below; overridden by tests. */
  readonly timeouts?: {
    /** Whole request head received within (default 5 s). */
    readonly headersMs?: number;
    /** Whole request (head and body) received within (default 10 s). */
    readonly requestMs?: number;
    /**
     * A handler that has not answered by then gets a 504 (default 10 min:
     * `renew --all` orders certificates one CA round trip at a time). The
     * work itself goes on in the daemon.
     */
    readonly handlerMs?: number;
  };
}

export interface ControlServerHandle {
  /** Stops accepting, ends open connections (after a short grace) and removes the socket file. */
  close(): Promise<void>;
}

/** Request bodies are a name or `{"all":true}`: 64 kB is generous. */
export const MAX_BODY_BYTES = 64 * 1024;
const HEADERS_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
const HANDLER_TIMEOUT_MS = 10 * 60_000;
/** How long a socket left at the path gets to accept a connection before it counts as in use. */
const PROBE_TIMEOUT_MS = 1_000;
/** Longest name `sun_path` holds on Linux, without the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
/** Only the owner ever needs this socket. */
const SOCKET_MODE = 0o600;

/** The control socket cannot be set up; the message says what to do. */
export class ControlSocketError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ControlSocketError';
  }
}

interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

class BadRequest extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Serves the control protocol (see protocol.ts) on a UNIX socket at
 * `opts.path`, mode 0600.
 *
 * The socket is never reachable at `opts.path` with a looser mode: it is
 * bound inside a fresh 0700 directory next to `opts.path`, chmod-ed to 0600
 * there, and only then hard-linked into place. `link(2)` never replaces an
 * existing file, so this also cannot delete whatever appeared at the path
 * since the stale-socket check. (The alternatives both leave a window: a
 * umask set around `listen` is process-wide and would also apply to files
 * and directories the libuv thread pool creates meanwhile (a 0700 directory
 * would come out 0600, unusable); a chmod after `listen` leaves the socket
 * connectable, with the mode the umask gave it, until the chmod, and Linux
 * checks the mode only at connect time.)
 */
export async function startControlServer(opts: ControlServerOptions): Promise<ControlServerHandle> {
  const headersTimeout = opts.timeouts?.headersMs ?? HEADERS_TIMEOUT_MS;
  const requestTimeout = Math.max(opts.timeouts?.requestMs ?? REQUEST_TIMEOUT_MS, headersTimeout);
  const handlerTimeout = opts.timeouts?.handlerMs ?? HANDLER_TIMEOUT_MS;

  async function route(method: string, pathname: string, body: () => Promise<string>) {
    if (pathname === ROUTES.status) {
      if (method !== 'GET') return methodNotAllowed('GET');
      return { status: 200, body: opts.handlers.status() } satisfies Reply;
    }
    if (pathname === ROUTES.renew) {
      if (method !== 'POST') return methodNotAllowed('POST');
      const target = parseRenewTarget(await body());
      const results = await withTimeout(opts.handlers.renew(target), handlerTimeout);
      return { status: 200, body: { results } } satisfies Reply;
    }
    return errorReply(404, 'NOT_FOUND', `no such route: ${method} ${pathname}`);
  }

  const server = createServer(
    { headersMs: headersTimeout, requestMs: requestTimeout },
    (req, res, method, pathname) => {
      route(method, pathname, () => readBody(req))
        .catch((err: unknown): Reply => {
          if (err instanceof BadRequest) {
            const r = errorReply(err.status, err.code, err.message);
            // The rest of an oversized body is not read: end the connection.
            return err.status === 413 ? { ...r, headers: { Connection: 'close' } } : r;
          }
          const code = (err as { code?: unknown } | null)?.code;
          if (typeof code === 'string' && Object.hasOwn(HANDLER_ERROR_STATUS, code)) {
            const status = HANDLER_ERROR_STATUS[code as keyof typeof HANDLER_ERROR_STATUS];
            return errorReply(status, code, (err as Error).message);
          }
          if (err instanceof HandlerTimeout) {
            return errorReply(
              504,
              'TIMEOUT',
              `no answer within ${Math.round(handlerTimeout / 1000)} s; the work goes on in the daemon: check \`acme-sidecar status\` later`,
            );
          }
          // The cause goes to the log, where the operator can read it in full.
          opts.log?.warn('control handler failed', {
            component: 'control',
            path: pathname,
            error: err instanceof Error ? err.message : String(err),
          });
          return errorReply(500, 'INTERNAL', "internal error; see the sidecar's log");
        })
        .then((r) => send(res, r))
        .catch(() => res.destroy());
    },
  );
  // Backstop for a socket that stays silent; the request timeouts above
  // cover slow clients, the handler timeout covers slow work.
  server.timeout = handlerTimeout + requestTimeout;
  // One operator at a terminal; a few scripts at most.
  server.maxConnections = 32;

  await bindPrivately(server, opts.path);
  server.on('error', (err) => opts.log?.warn('control server error', { error: err.message }));
  const ours = await fs.lstat(opts.path);
  opts.log?.info('control socket listening', { component: 'control', path: opts.path });

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        await closeServer(server);
        // libuv removes the path it bound (the temporary one); the linked
        // path is ours to remove, unless another server has replaced it.
        const now = await fs.lstat(opts.path).catch(() => undefined);
        if (now && now.ino === ours.ino && now.dev === ours.dev) {
          await fs.unlink(opts.path).catch(() => undefined);
        }
      })();
      return closing;
    },
  };
}

function methodNotAllowed(allow: string): Reply {
  return {
    ...errorReply(405, 'METHOD_NOT_ALLOWED', `use ${allow}`),
    headers: { Allow: allow },
  };
}

function errorReply(status: number, code: string, message: string): Reply {
  return { status, body: { error: { code, message } } satisfies ErrorBody };
}

function send(res: http.ServerResponse, r: Reply): void {
  const body = Buffer.from(`${JSON.stringify(r.body)}\n`, 'utf8');
  res.writeHead(r.status, {
    'Cache-Control': 'no-store',
    ...r.headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(body.length),
  });
  res.end(body);
}

/** The body as text; 413 past {@link MAX_BODY_BYTES}, without reading the rest. */
function readBody(req: http.IncomingMessage): Promise<string> {
  const tooLarge = () =>
    new BadRequest(413, 'TOO_LARGE', `request body larger than ${MAX_BODY_BYTES} bytes`);
  const declared = Number(req.headers['content-length']);
  if (declared > MAX_BODY_BYTES) {
    req.resume();
    return Promise.reject(tooLarge());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.resume();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** `{"name": "<non-empty string>"}` or `{"all": true}`, nothing else. */
export function parseRenewTarget(text: string): RenewTarget {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BadRequest(400, 'BAD_REQUEST', 'the body is not JSON');
  }
  const usage = 'expected {"name": "<certificate name>"} or {"all": true}';
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BadRequest(400, 'BAD_REQUEST', usage);
  }
  const o = value as Record<string, unknown>;
  const hasName = Object.hasOwn(o, 'name');
  const hasAll = Object.hasOwn(o, 'all');
  if (hasName === hasAll) throw new BadRequest(400, 'BAD_REQUEST', usage);
  if (hasAll) {
    if (o.all !== true) throw new BadRequest(400, 'BAD_REQUEST', usage);
    return { all: true };
  }
  if (typeof o.name !== 'string' || o.name.length === 0 || o.name.length > 255) {
    throw new BadRequest(400, 'BAD_REQUEST', `"name" must be a certificate name; ${usage}`);
  }
  return { name: o.name };
}

class HandlerTimeout extends Error {}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HandlerTimeout()), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Makes `path` free for a new socket: nothing there, or a socket nobody
 * answers on (a server that died without removing it), which is removed.
 * Anything else is refused with a message that says what to do.
 */
export async function clearStaleSocket(
  path: string,
  probeMs: number = PROBE_TIMEOUT_MS,
): Promise<void> {
  let st: Stats;
  try {
    st = await fs.lstat(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return;
    throw new ControlSocketError(`cannot check ${path}: ${messageOf(err)}`, { cause: err });
  }
  if (!st.isSocket()) {
    throw new ControlSocketError(
      `${path} exists and is ${describeKind(st)}, not a socket; acme-sidecar will not delete it: move it away`,
    );
  }
  const state = await probe(path, probeMs);
  if (state === 'gone') return;
  if (state === 'answering') {
    throw new ControlSocketError(
      `${path} is in use: something (another \`acme-sidecar run\`?) answers on it`,
    );
  }
  // Stale. Remove it only if it is still the socket probed above, so a
  // file put there meanwhile is left alone (the window left is between this
  // lstat and the unlink, and only the directory's owner can use it).
  const again = await fs.lstat(path).catch(() => undefined);
  if (!again) return;
  if (again.ino !== st.ino || again.dev !== st.dev) {
    throw new ControlSocketError(`${path} changed while it was being checked; start again`);
  }
  await fs.unlink(path).catch((err: unknown) => {
    if (errnoOf(err) !== 'ENOENT') {
      throw new ControlSocketError(`cannot remove the stale socket ${path}: ${messageOf(err)}`, {
        cause: err,
      });
    }
  });
}

function probe(path: string, ms: number): Promise<'answering' | 'stale' | 'gone'> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ path });
    const timer = setTimeout(() => {
      // Connected-but-silent cannot happen before 'connect'; a connect that
      // hangs means a full backlog: someone is there.
      sock.destroy();
      resolve('answering');
    }, ms);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve('answering');
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      const code = errnoOf(err);
      if (code === 'ECONNREFUSED') resolve('stale');
      else if (code === 'ENOENT') resolve('gone');
      else {
        reject(
          new ControlSocketError(`cannot check whether ${path} is in use: ${err.message}`, {
            cause: err,
          }),
        );
      }
    });
  });
}

/** See {@link startControlServer} for why: bind in a private directory, chmod, link into place. */
async function bindPrivately(server: http.Server, path: string): Promise<void> {
  const dir = dirname(path);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await clearStaleSocket(path);
  // mkdtemp creates the directory 0700.
  const privateDir = await fs.mkdtemp(join(dir, `.${basename(path)}-`));
  const tmp = join(privateDir, 's');
  for (const p of [path, tmp]) {
    if (Buffer.byteLength(p) > MAX_SOCKET_PATH_BYTES) {
      await fs.rm(privateDir, { recursive: true, force: true });
      throw new ControlSocketError(
        `the control socket path ${p} is longer than the ${MAX_SOCKET_PATH_BYTES} bytes a UNIX socket path may have; use a shorter STATE_DIR`,
      );
    }
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: tmp, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    try {
      await fs.chmod(tmp, SOCKET_MODE);
      await publish(tmp, path);
    } catch (err) {
      await new Promise((r) => server.close(r));
      throw err;
    }
  } finally {
    await fs.rm(privateDir, { recursive: true, force: true });
  }
}

/** Puts the socket at `path` without ever replacing what is there. */
async function publish(tmp: string, path: string): Promise<void> {
  try {
    await fs.link(tmp, path);
    return;
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'EEXIST') {
      throw new ControlSocketError(
        `${path} appeared while the control socket was starting; is another \`acme-sidecar run\` starting?`,
        { cause: err },
      );
    }
    // A file system without hard links: rename, which would replace a file,
    // so only onto a path that is still free (a narrow window, accepted).
    if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EMLINK', 'ENOSYS'].includes(code ?? '')) {
      throw new ControlSocketError(`cannot create ${path}: ${messageOf(err)}`, { cause: err });
    }
  }
  if (
    await fs.lstat(path).then(
      () => true,
      () => false,
    )
  ) {
    throw new ControlSocketError(`${path} appeared while the control socket was starting`);
  }
  await fs.rename(tmp, path);
}

function describeKind(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  return 'a device or other special file';
}

function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
