import { MAX_MESSAGE_LENGTH } from '../domain/status.js';

/**
 * The one redaction of text that came from outside (a hook's output, a CA
 * problem document, a platform API's error) on its way to a person: a log
 * line, `/status`, the control socket. A PEM private key is replaced whole,
 * including a block cut off before its END line (truncated output); with
 * `maxLength`, the result is also cut to that many characters, marked `…`.
 */
export function redact(text: string, maxLength?: number): string {
  const r = text.includes('PRIVATE KEY-----') ? text.replace(PEM_KEY, REDACTED_KEY) : text;
  return maxLength !== undefined && r.length > maxLength ? `${r.slice(0, maxLength - 1)}…` : r;
}

export const REDACTED_KEY = '[redacted private key]';

/** A whole block, or from BEGIN to the end of the text when no END follows. */
const PEM_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g;

/**
 * An error text from outside on its way to whoever asks over HTTP or the
 * control socket (`/status`, `/readyz`, `acme-sidecar status`): redacted and
 * bounded the same way everywhere.
 */
export function cleanMessage(m: string): string {
  return redact(m, MAX_MESSAGE_LENGTH);
}
