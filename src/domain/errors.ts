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
  | 'LOCK_TIMEOUT'
  | 'ACME_RATE_LIMITED'
  | 'RATE_BUDGET_EXCEEDED'
  | 'ACME_BAD_NONCE'
  | 'ACME_UNAUTHORIZED'
  | 'ACME_CA_UNREACHABLE'
  | 'ACME_SERVER_ERROR'
  | 'ACME_TIMEOUT'
  | 'ACME_REJECTED'
  | 'ACME_VALIDATION_FAILED'
  | 'ACME_BAD_TOKEN'
  | 'ACME_BAD_RESPONSE'
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
  | 'CLUSTER_NOT_LEADER';

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
