/**
 * Every failure carries a stable `code` (the undici/fastify habit), so logs,
 * /status and metrics name it the same way, and a `retryable` marker.
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'HOSTNAME_INVALID'
  | 'CERT_NAME_INVALID'
  | 'STORE_KEY_INVALID'
  | 'STORE_IO'
  | 'STORE_UNAVAILABLE'
  | 'STORE_UNAUTHORIZED'
  | 'STORE_DECRYPT_FAILED'
  | 'STORE_TLS'
  | 'STORE_CORRUPT'
  | 'LOCK_TIMEOUT'
  | 'ACME_RATE_LIMITED'
  | 'RATE_BUDGET_EXCEEDED'
  | 'RENEW_COOLDOWN'
  | 'ACME_BAD_NONCE'
  | 'ACME_UNAUTHORIZED'
  | 'ACME_CA_UNREACHABLE'
  | 'ACME_SERVER_ERROR'
  | 'ACME_TIMEOUT'
  | 'ACME_REJECTED'
  | 'ACME_VALIDATION_FAILED'
  | 'ACME_BAD_TOKEN'
  | 'ACME_BAD_RESPONSE'
  | 'ACME_PROFILE_INVALID'
  | 'ACME_IP_REFUSED'
  | 'SELF_CHECK_FAILED'
  | 'CHAIN_INVALID'
  | 'ABORTED'
  | 'NO_STEADY_STATE'
  | 'PLATFORM_UNAUTHORIZED'
  | 'PLATFORM_NOT_FOUND'
  | 'PLATFORM_REJECTED'
  | 'PLATFORM_UNAVAILABLE'
  | 'PLATFORM_BAD_RESPONSE'
  | 'PLATFORM_TLS'
  | 'PLATFORM_CONFLICT'
  | 'CLUSTER_FANOUT_FAILED'
  | 'CLUSTER_NOT_LEADER'
  | 'DNS_PROVIDER_MISSING'
  | 'DNS_UNREACHABLE'
  | 'DNS_UPDATE_REFUSED'
  | 'DNS_PROVIDER_FAILED'
  | 'DNS_PROPAGATION_TIMEOUT'
  | 'DNS_PERSIST_RECORD_MISSING';

/**
 * What each code means, one line each, for people: docs/operations.md's
 * error-code table is generated from this (`npm run docs`). A new code does
 * not typecheck until it has its line here.
 */
export const ERROR_CODE_MEANINGS: { readonly [C in ErrorCode]: string } = {
  CONFIG_INVALID:
    'A setting has a bad value; the message names the variable, the value and what is valid.',
  HOSTNAME_INVALID:
    'A hostname is not one a public CA can issue for (a misplaced `*`, single label, IP address in odd form, malformed).',
  CERT_NAME_INVALID: 'A certificate name cannot be used as a directory name under `live/`.',
  STORE_KEY_INVALID: 'A store key was refused because it could leave the store (such as `../`).',
  STORE_IO: 'Reading or writing the state (files under `STATE_DIR`, or etcd) failed.',
  STORE_UNAVAILABLE:
    'etcd did not answer (no quorum, unreachable); retried, nothing is ordered meanwhile.',
  STORE_UNAUTHORIZED:
    'etcd refused the credentials (`CLUSTER_ETCD_USERNAME`, password or client certificate).',
  STORE_DECRYPT_FAILED:
    'A value in etcd does not open with the cluster key (another key, altered or written by hand); it is never used.',
  STORE_TLS:
    "The TLS handshake with etcd failed (check `CLUSTER_ETCD_CA_FILE` and the servers' certificates).",
  STORE_CORRUPT:
    'A record in the state (a file under `STATE_DIR`, or an etcd value) does not parse, has the wrong shape, or holds a certificate that does not match its key: it is kept aside (`<file>.corrupt-<time>`, or under `corrupt/` in etcd), never deleted, and treated as missing.',
  LOCK_TIMEOUT: "A certificate's lock stayed held by another process or replica for too long.",
  ACME_RATE_LIMITED:
    'The CA refused the request for a rate limit; retried after its `Retry-After`.',
  RATE_BUDGET_EXCEEDED:
    'The order was not sent: it would exceed the `RATE_LIMITS` budget; `/status` says when it can be.',
  RENEW_COOLDOWN:
    '`acme-sidecar renew` was refused for this certificate: a forced renewal of it is running, or one started less than `RENEW_COOLDOWN` ago; the message says how long to wait.',
  ACME_BAD_NONCE: 'The CA refused a stale nonce; retried at once with a fresh one.',
  ACME_UNAUTHORIZED:
    'The CA refused the account or the hostname (unauthorized, unknown account, rejected identifier, CAA).',
  ACME_CA_UNREACHABLE:
    'The CA could not be reached (connection refused or reset, DNS failure, no directory).',
  ACME_SERVER_ERROR: 'The CA answered with an internal error (5xx); retried with backoff.',
  ACME_TIMEOUT: 'The CA did not answer within `ACME_TIMEOUT_SECONDS`.',
  ACME_REJECTED:
    'The CA refused the order or a challenge (connection, DNS, TLS or response problem, or no http-01 offered).',
  ACME_VALIDATION_FAILED:
    'The CA could not fetch or match the challenge answer (nginx, DNS or a firewall in the way).',
  ACME_BAD_TOKEN: 'The CA sent a challenge token that is not safe to use as a file name; refused.',
  ACME_BAD_RESPONSE: 'The CA answered with something that is not a usable ACME response.',
  ACME_PROFILE_INVALID:
    "`ACME_PROFILE` or the profile label names a profile the CA's `meta.profiles` lacks, or it lists none.",
  ACME_IP_REFUSED:
    "The CA will not issue for an IP address under the order's profile; the message names the profile to set.",
  SELF_CHECK_FAILED:
    'Our own fetch of the challenge file over HTTP failed, so the CA was not asked (see `SELF_CHECK_ADDRESS`).',
  CHAIN_INVALID:
    'The certificate the CA returned is missing, does not verify, or lacks a requested hostname.',
  ABORTED: 'Work abandoned because the sidecar is shutting down.',
  NO_STEADY_STATE:
    'A certificate kept changing step without settling in one pass; counted as a failure and retried with backoff.',
  PLATFORM_UNAUTHORIZED:
    'The platform API (Rancher, Docker socket) refused our credentials or permissions.',
  PLATFORM_NOT_FOUND: 'The platform API has no such object (404).',
  PLATFORM_REJECTED: 'The platform API refused a request (a 4xx other than 401, 403, 404 and 429).',
  PLATFORM_UNAVAILABLE:
    'The platform API could not be reached, timed out, or answered 5xx or 429; retried.',
  PLATFORM_BAD_RESPONSE: 'The platform API answered with something that is not the JSON expected.',
  PLATFORM_TLS:
    'The TLS handshake with the Rancher API failed or its certificate did not match `CATTLE_CERT_SHA256`.',
  PLATFORM_CONFLICT:
    'The platform already has a certificate by that name that acme-sidecar did not create; left alone.',
  CLUSTER_FANOUT_FAILED:
    "Not every live replica's nginx served the challenge token in time, so the CA was not asked.",
  CLUSTER_NOT_LEADER: 'This replica lost (or never had) the leadership, so it did not act.',
  DNS_PROVIDER_MISSING:
    'The certificate needs DNS-01 (a wildcard, `ACME_CHALLENGE=dns-01` or the challenge label) and `DNS_PROVIDER` is not set.',
  DNS_UNREACHABLE:
    'A DNS server (the RFC 2136 primary, an authoritative server or a resolver) did not answer.',
  DNS_UPDATE_REFUSED:
    'The DNS server refused the TXT update: bad TSIG key, secret or algorithm, or a name the key may not change.',
  DNS_PROVIDER_FAILED:
    'The PowerDNS API or the `EXEC_PATH` script failed to add or remove the TXT record (status or exit code in the message).',
  DNS_PROPAGATION_TIMEOUT:
    'Not every server answered the TXT value within `DNS_PROPAGATION_TIMEOUT`, so the CA was not asked.',
  DNS_PERSIST_RECORD_MISSING:
    'dns-persist-01: the CA found no `_validation-persist.<name>` TXT record naming it and our account (or one without `policy=wildcard` for a wildcard); the message gives the exact record to set once.',
};

export class SidecarError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  /** Seconds the remote side asked us to wait, if it said. */
  readonly retryAfter?: number;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { retryable?: boolean; retryAfter?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'SidecarError';
    this.code = code;
    this.retryable = opts.retryable ?? false;
    if (opts.retryAfter !== undefined) this.retryAfter = opts.retryAfter;
  }
}

/** Bad configuration: names the variable, the value and what is valid. */
export class ConfigError extends SidecarError {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super(
      'CONFIG_INVALID',
      'invalid configuration:\n' +
        problems.map((p) => `  ${p.variable}=${JSON.stringify(p.value)}: ${p.expected}`).join('\n'),
    );
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export interface ConfigProblem {
  readonly variable: string;
  /** The value as given (already redacted for secret variables). */
  readonly value: string | undefined;
  readonly expected: string;
}

export function errorCode(err: unknown): ErrorCode | 'UNKNOWN' {
  return err instanceof SidecarError ? err.code : 'UNKNOWN';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
