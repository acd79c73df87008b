import { SidecarError, type ErrorCode } from '../domain/errors.js';
import type { AcmeExchange, AcmeProblem } from './http.js';

const ACME_NS = 'urn:ietf:params:acme:error:';

/** What the issuer knows beyond acme-client's error: the last request, and which setting names the CA. */
export interface AcmeFailureContext {
  readonly last?: AcmeExchange;
  /** The variable holding this CA's directory URL (ACME_STAGING_DIRECTORY_URL...). */
  readonly directorySetting?: string;
}

/**
 * RFC 8555 §6.7 problem types: the code, whether a later attempt may
 * succeed, and what a person should check.
 */
const PROBLEMS: Record<string, readonly [ErrorCode, boolean, string]> = {
  rateLimited: [
    'ACME_RATE_LIMITED',
    true,
    'The CA limits how often it issues; the sidecar waits as asked and tries again by itself',
  ],
  badNonce: [
    'ACME_BAD_NONCE',
    true,
    'The CA kept rejecting our nonces; retried on the backoff schedule, nothing to change here',
  ],
  unauthorized: [
    'ACME_UNAUTHORIZED',
    false,
    "Check that the account may order these hostnames (the CA's policy, CAA records)",
  ],
  accountDoesNotExist: [
    'ACME_UNAUTHORIZED',
    false,
    'The CA does not know our account; it is registered again on the next attempt',
  ],
  rejectedIdentifier: [
    'ACME_UNAUTHORIZED',
    false,
    'Check the hostname: this CA will not issue for it',
  ],
  caa: [
    'ACME_UNAUTHORIZED',
    false,
    "Check the hostname's CAA DNS records: they must allow this CA",
  ],
  externalAccountRequired: [
    'ACME_REJECTED',
    false,
    'This CA requires External Account Binding: set EAB_KID and EAB_HMAC_KEY',
  ],
  // draft-ietf-acme-profiles: a profile the directory no longer lists (it is
  // checked against meta.profiles first, but the directory is cached a day).
  invalidProfile: [
    'ACME_PROFILE_INVALID',
    false,
    "Set ACME_PROFILE (or the io.acme-sidecar.profile label) to one of the profiles in the CA's directory (meta.profiles), or unset it",
  ],
  serverInternal: [
    'ACME_SERVER_ERROR',
    true,
    'The CA failed on its side; retried on the backoff schedule',
  ],
};

/** Validation failures (§8): the CA could not fetch or match our answer. */
const VALIDATION_CHECK =
  "Check that the hostname's DNS points at this sidecar's nginx and that port 80 serves /.well-known/acme-challenge/ from the internet";
const VALIDATION_TYPES = new Set(['connection', 'dns', 'incorrectResponse', 'tls']);

/**
 * The one place that turns acme-client's plain Errors (and the problem
 * documents and network failures seen during the call) into coded,
 * retry-aware errors whose message a person can act on: what was tried
 * (method and URL), what happened, what to check. acme-client's own words
 * are never shown: after a network failure they are an internal TypeError
 * (`Cannot read properties of undefined (reading 'config')`).
 * RFC 8555 §6.7 lists the problem types.
 */
export function classifyAcmeError(
  err: unknown,
  problems: readonly AcmeProblem[],
  networkError?: string,
  seen: AcmeFailureContext = {},
): SidecarError {
  if (err instanceof SidecarError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const { last } = seen;
  const setting = seen.directorySetting ?? 'the directory URL';
  const tried = last ? `${last.method} ${last.url}` : 'a request to the CA';
  const problem = problems[problems.length - 1];

  if (problem) return fromProblem(problem, err, last, setting);

  const answered = last?.status !== undefined;
  const netCode = answered ? undefined : (last?.code ?? networkError ?? codeOf(err));
  const make = (code: ErrorCode, text: string, retryable = true) =>
    new SidecarError(code, text, { retryable, cause: err });

  if (
    netCode === 'ECONNABORTED' ||
    netCode === 'ETIMEDOUT' ||
    last?.timedOutAfterMs !== undefined ||
    (!answered && netCode === undefined && /timeout/i.test(message))
  ) {
    const within = last?.timedOutAfterMs !== undefined ? ` within ${last.timedOutAfterMs} ms` : '';
    return make(
      'ACME_TIMEOUT',
      `CA did not answer in time: ${tried} got no answer${within}. Check that the CA is reachable from this host and not overloaded (ACME_TIMEOUT_SECONDS sets the limit)`,
    );
  }
  if (netCode !== undefined) {
    const host = last ? hostOf(last.url) : 'the CA';
    const tls = TLS_CODES[netCode] ?? (/CERT|SSL|TLS/.test(netCode) ? 'is not trusted' : undefined);
    if (tls !== undefined) {
      return make(
        'ACME_CA_UNREACHABLE',
        `CA not trusted: ${tried} failed: the HTTPS certificate of ${host} ${tls} (${netCode}). Check ${setting}, or add the CA's root certificate to ACME_CA_BUNDLE`,
      );
    }
    const [what, check] = NETWORK[netCode] ?? [
      `failed: ${last?.reason?.replace(/\.$/, '') ?? 'no answer'} (${netCode})`,
      `Check that ${host} is reachable from this host`,
    ];
    return make(
      'ACME_CA_UNREACHABLE',
      `CA unreachable: ${tried} ${what.replace('{host}', host)}. ${check.replace('{host}', host).replace('{setting}', setting)}`,
    );
  }
  if (last?.notJson) {
    const { contentType, bytes } = last.notJson;
    return make(
      'ACME_BAD_RESPONSE',
      `CA answered something other than ACME: ${tried} answered HTTP ${last.status} with ${bytes} bytes of ${contentType}, not JSON. Check that ${setting} points to an ACME directory (RFC 8555 §7.1.1), not a web page or a proxy`,
    );
  }
  // What remains is acme-client's own complaint about an answer it could
  // not use ("Unable to locate API resource URL in ACME directory"): its
  // sentence is meant for people; a programming error's (TypeError...) is not.
  const internal = err instanceof TypeError || err instanceof RangeError || !(err instanceof Error);
  const happened = internal ? 'the ACME client failed on the answer' : message.replace(/\.$/, '');
  const code: ErrorCode = /directory|nonce/i.test(message)
    ? 'ACME_CA_UNREACHABLE'
    : 'ACME_BAD_RESPONSE';
  return make(
    code,
    `${happened} (after ${tried}${last?.status !== undefined ? `, HTTP ${last.status}` : ''}). Check that ${setting} points to an RFC 8555 ACME server`,
  );
}

function fromProblem(
  p: AcmeProblem,
  err: unknown,
  last: AcmeExchange | undefined,
  setting: string,
): SidecarError {
  const type = p.type.startsWith(ACME_NS) ? p.type.slice(ACME_NS.length) : p.type;
  const detail = p.detail.replace(/\.$/, '') || 'no detail given';
  const mk = (code: ErrorCode, retryable: boolean, check: string, where: string) =>
    new SidecarError(code, `${type || `HTTP ${p.status}`}: ${detail} (${where}). ${check}`, {
      retryable,
      cause: err,
      ...(p.retryAfter !== undefined && { retryAfter: p.retryAfter }),
    });
  const answeredBy = last
    ? `${last.method} ${last.url} answered HTTP ${p.status}`
    : `HTTP ${p.status}`;
  if (p.source === 'validation' || VALIDATION_TYPES.has(type)) {
    // The CA could not fetch or match our answer (nginx, DNS, a firewall):
    // worth retrying on the backoff schedule once someone fixes it.
    const of = p.identifier !== undefined ? ` of ${p.identifier}` : '';
    const where = p.source === 'validation' ? `the CA's validation${of}` : answeredBy;
    return mk(
      p.source === 'validation' ? 'ACME_VALIDATION_FAILED' : 'ACME_REJECTED',
      true,
      VALIDATION_CHECK,
      where,
    );
  }
  const known = PROBLEMS[type];
  if (known) {
    const [code, retryable, check] = known;
    const wait =
      type === 'rateLimited' && p.retryAfter !== undefined ? ` (in ${p.retryAfter} s)` : '';
    return mk(code, retryable, check + wait, answeredBy);
  }
  if (p.status >= 500) {
    return mk(
      'ACME_SERVER_ERROR',
      true,
      'The CA failed on its side; retried on the backoff schedule',
      answeredBy,
    );
  }
  if (p.status === 429) {
    return mk(
      'ACME_RATE_LIMITED',
      true,
      'The CA limits how often it issues; the sidecar waits and tries again by itself',
      answeredBy,
    );
  }
  return mk(
    'ACME_REJECTED',
    false,
    `The CA refused the request; check ${setting} and the detail above`,
    answeredBy,
  );
}

/** Certificate verification failures, in words (Node/OpenSSL codes). */
const TLS_CODES: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'chains to a root this host does not trust',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'is signed by an issuer this host does not trust',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'is signed by an issuer this host does not trust',
  CERT_HAS_EXPIRED: 'has expired',
  CERT_NOT_YET_VALID: 'is not valid yet',
  ERR_TLS_CERT_ALTNAME_INVALID: 'does not name this host',
};

/** Network failures: what happened, what to check. */
const NETWORK: Record<string, readonly [string, string]> = {
  ECONNREFUSED: [
    'was refused (ECONNREFUSED): nothing listens on {host}',
    'Check that the CA is running and that {setting} names the right host and port',
  ],
  ECONNRESET: [
    'failed: the connection was reset (ECONNRESET)',
    'Check for a proxy or firewall between this host and {host}',
  ],
  EPIPE: [
    'failed: the connection was closed while sending (EPIPE)',
    'Check for a proxy or firewall between this host and {host}',
  ],
  ENOTFOUND: [
    'failed: the name in {host} does not resolve (ENOTFOUND)',
    "Check {setting} and this host's DNS",
  ],
  EAI_AGAIN: [
    'failed: the name in {host} could not be resolved now (EAI_AGAIN)',
    "Check this host's DNS resolver",
  ],
  EHOSTUNREACH: [
    'failed: no route to {host} (EHOSTUNREACH)',
    "Check this host's network and firewall",
  ],
  ENETUNREACH: [
    'failed: the network of {host} is unreachable (ENETUNREACH)',
    "Check this host's network and firewall",
  ],
};

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'the CA';
  }
}
