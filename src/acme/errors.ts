import { SidecarError, type ErrorCode } from '../domain/errors.js';
import type { AcmeProblem } from './http.js';

const ACME_NS = 'urn:ietf:params:acme:error:';

/**
 * The one place that turns acme-client's plain Errors (and the problem
 * documents seen during the call) into coded, retry-aware errors.
 * RFC 8555 §6.7 lists the problem types.
 */
export function classifyAcmeError(
  err: unknown,
  problems: readonly AcmeProblem[],
  networkError?: string,
): SidecarError {
  if (err instanceof SidecarError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const netCode = networkError ?? (err as { code?: unknown })?.code;
  const last = problems[problems.length - 1];

  if (last) {
    const type = last.type.startsWith(ACME_NS) ? last.type.slice(ACME_NS.length) : last.type;
    const text = `${type || `HTTP ${last.status}`}: ${last.detail || message}`;
    const mk = (code: ErrorCode, retryable: boolean) =>
      new SidecarError(code, text, {
        retryable,
        cause: err,
        ...(last.retryAfter !== undefined && { retryAfter: last.retryAfter }),
      });
    if (last.source === 'validation') {
      // The CA could not fetch or match our answer (nginx, DNS, a firewall):
      // worth retrying on the backoff schedule once someone fixes it.
      return mk('ACME_VALIDATION_FAILED', true);
    }
    switch (type) {
      case 'rateLimited':
        return mk('ACME_RATE_LIMITED', true);
      case 'badNonce':
        return mk('ACME_BAD_NONCE', true);
      case 'unauthorized':
      case 'accountDoesNotExist':
      case 'rejectedIdentifier':
      case 'caa':
        return mk('ACME_UNAUTHORIZED', false);
      case 'serverInternal':
        return mk('ACME_SERVER_ERROR', true);
      case 'connection':
      case 'dns':
      case 'incorrectResponse':
      case 'tls':
        // Validation failures: the CA could not fetch our answer. Worth
        // retrying later (nginx or DNS may be fixed), never hammered.
        return mk('ACME_REJECTED', true);
      default:
        if (last.status >= 500) return mk('ACME_SERVER_ERROR', true);
        if (last.status === 429) return mk('ACME_RATE_LIMITED', true);
        return mk('ACME_REJECTED', false);
    }
  }
  if (netCode === 'ECONNABORTED' || netCode === 'ETIMEDOUT' || /timeout/i.test(message)) {
    return new SidecarError('ACME_TIMEOUT', `CA did not answer in time: ${message}`, {
      retryable: true,
      cause: err,
    });
  }
  if (
    typeof netCode === 'string' &&
    ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'EPIPE'].includes(
      netCode,
    )
  ) {
    return new SidecarError('ACME_CA_UNREACHABLE', `CA unreachable (${netCode}): ${message}`, {
      retryable: true,
      cause: err,
    });
  }
  if (/directory|nonce/i.test(message)) {
    return new SidecarError('ACME_CA_UNREACHABLE', message, { retryable: true, cause: err });
  }
  return new SidecarError('ACME_BAD_RESPONSE', message, { retryable: true, cause: err });
}
