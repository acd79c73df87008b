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

/**
 * {@link redact} applied to every string inside a value: object fields and
 * array items at any depth, and an Error's message, which `JSON.stringify`
 * would otherwise drop. Returns a copy
 * where anything changed; never mutates what the caller passed (a logged
 * object may be live state). Cycles end as `[circular]`; past `maxDepth`
 * levels a value is replaced by `[too deep]` rather than passed on unread.
 */
export function redactDeep(value: unknown, maxDepth = 8): unknown {
  return walk(value, maxDepth, new WeakSet<object>());
}

function walk(v: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof v === 'string') return redact(v);
  if (v === null || typeof v !== 'object') return v;
  if (seen.has(v)) return '[circular]';
  if (depth <= 0) return '[too deep]';
  seen.add(v);
  try {
    if (Array.isArray(v)) return v.map((x) => walk(x, depth - 1, seen));
    if (v instanceof Error) {
      // Name and message only: a stack is noise in a log line (and was never printed).
      const out: Record<string, unknown> = { name: v.name, message: redact(v.message) };
      for (const [k, x] of Object.entries(v)) out[k] = walk(x, depth - 1, seen);
      return out;
    }
    if (v instanceof Date || Buffer.isBuffer(v) || ArrayBuffer.isView(v)) return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = walk(x, depth - 1, seen);
    return out;
  } finally {
    seen.delete(v);
  }
}

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
