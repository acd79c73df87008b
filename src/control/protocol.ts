import { ipCertName, isIpv6CertName, parseIpLiteral } from '../domain/ip-address.js';
import type { StatusSnapshot } from '../domain/status.js';

/**
 * The control socket's protocol: HTTP/1.1 over a UNIX socket, JSON bodies.
 * This is the only surface that changes state (it can force a renewal), so
 * it never listens on the network: who may use it is decided by the file
 * mode of the socket (0600, the sidecar's user), as LXD does with its
 * local socket.
 *
 *   GET  /v1/status   -> StatusSnapshot (the same document as /status)
 *   POST /v1/renew    {"name": "..."} | {"all": true} -> {"results": RenewResult[]}
 *
 * Every error is `{"error": {"code", "message"}}` with a 4xx/5xx status.
 */
export const ROUTES = { status: '/v1/status', renew: '/v1/renew' } as const;

/** Default file name of the socket, under STATE_DIR. */
export const CONTROL_SOCKET_NAME = 'control.sock';

export type RenewTarget = { readonly name: string } | { readonly all: true };

/**
 * `acme-sidecar renew <name>|--all` arguments, or undefined for a usage
 * error. An IPv6 address's certificate name starts with "-" (`--1` for
 * `::1`) and is taken as a name; an address names its certificate too.
 */
export function parseRenewArgs(args: readonly string[]): RenewTarget | undefined {
  const [arg, ...extra] = args;
  if (arg === undefined || extra.length > 0) return undefined;
  if (arg === '--all') return { all: true };
  if (arg.startsWith('-') && !isIpv6CertName(arg)) return undefined;
  const ip = parseIpLiteral(arg);
  return { name: ip.kind === 'ip' ? ipCertName(ip.address) : arg };
}

/** What one forced renewal ended with. */
export interface RenewResult {
  readonly name: string;
  /** Serving a valid certificate from the target CA after the attempt. */
  readonly ok: boolean;
  /** Phase of the certificate nginx serves now (`CertStatus['phase']`). */
  readonly phase: string;
  readonly serial?: string;
  readonly error?: { readonly code: string; readonly message: string };
}

export interface RenewResponse {
  readonly results: readonly RenewResult[];
}

/**
 * What the daemon does for the socket. A handler signals an expected
 * failure by throwing an error whose `code` is one of
 * {@link HANDLER_ERROR_STATUS}'s keys; anything else is a 500 whose cause
 * goes to the log only.
 */
export interface ControlHandlers {
  status(): StatusSnapshot;
  renew(target: RenewTarget): Promise<readonly RenewResult[]>;
}

/** Handler error codes the server passes on, with their HTTP status. */
export const HANDLER_ERROR_STATUS = {
  /** No certificate by that name in the last discovery. */
  NOT_FOUND: 404,
  /** Not possible yet (first discovery not finished) or any more (shutting down). */
  UNAVAILABLE: 503,
} as const;

export type HandlerErrorCode = keyof typeof HANDLER_ERROR_STATUS;

/** An expected handler failure, passed on to the client with its message. */
export class ControlHandlerError extends Error {
  readonly code: HandlerErrorCode;
  constructor(code: HandlerErrorCode, message: string) {
    super(message);
    this.name = 'ControlHandlerError';
    this.code = code;
  }
}

export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}
