import winston from 'winston';
import { redactDeep } from './redact.js';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'json' | 'text';

/** Field names every component uses, so logs can be filtered the same way. */
export interface LogFields {
  component?: string;
  cert?: string;
  domains?: readonly string[];
  phase?: string;
  reason?: string;
  attempt?: number;
  code?: string;
  [key: string]: unknown;
}

export interface Logger {
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

/**
 * PEM private keys must never reach a log line, whatever field they hide in,
 * however deep (an error's `cause`, a response body inside an object).
 * Nested values are replaced by redacted copies: the caller's objects are
 * left as they were.
 */
const redactFields = winston.format((info) => {
  const fields = info as Record<string, unknown>;
  for (const [k, v] of Object.entries(fields)) fields[k] = redactDeep(v);
  return info;
});

/** Control characters escaped: a value from a label cannot start a forged log line. */
function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => JSON.stringify(c).slice(1, -1));
}

/** Plain words stay bare; anything with spaces, quotes or control characters is JSON-quoted. */
function textValue(v: unknown): string {
  if (typeof v !== 'string') return oneLine(JSON.stringify(v) ?? String(v));
  return /^[\w.:/@+-]*$/.test(v) ? v : JSON.stringify(v);
}

export function createLogger(
  opts: { level?: LogLevel; format?: LogFormat; stream?: NodeJS.WritableStream } = {},
): Logger {
  const format =
    opts.format === 'text'
      ? winston.format.combine(
          redactFields(),
          winston.format.timestamp(),
          winston.format.printf(({ timestamp, level, message, ...rest }) => {
            const extra = Object.entries(rest)
              .map(([k, v]) => `${k}=${textValue(v)}`)
              .join(' ');
            return `${String(timestamp)} ${level} ${oneLine(String(message))}${extra ? ' ' + extra : ''}`;
          }),
        )
      : winston.format.combine(redactFields(), winston.format.timestamp(), winston.format.json());
  const transport = opts.stream
    ? new winston.transports.Stream({ stream: opts.stream })
    : new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] });
  return winston.createLogger({ level: opts.level ?? 'info', format, transports: [transport] });
}

/** Discards everything; for tests that do not look at logs. */
export const silentLogger: Logger = {
  error: () => {},
  warn: () => {},
  info: () => {},
  debug: () => {},
  child: () => silentLogger,
};

/**
 * `parent.child(fields)`, made only when something is logged: a pass makes
 * one per certificate and, when nothing happens, logs nothing through it
 * (winston's child costs a few microseconds, times every certificate).
 */
export function lazyChild(parent: Logger, fields: LogFields): Logger {
  let made: Logger | undefined;
  const get = (): Logger => (made ??= parent.child(fields));
  return {
    error: (msg, more) => get().error(msg, more),
    warn: (msg, more) => get().warn(msg, more),
    info: (msg, more) => get().info(msg, more),
    debug: (msg, more) => get().debug(msg, more),
    child: (more) => lazyChild(get(), more),
  };
}
