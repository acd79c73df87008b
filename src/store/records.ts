import { createHash } from 'node:crypto';
import { SidecarError, errorMessage } from '../domain/errors.js';
import type { LocalStateProblem } from '../domain/status.js';
import type { Clock } from '../lifecycle/clock.js';
import type { Logger } from '../util/log.js';
import type { CertStore } from './store.js';

/** A record's value, or why it is not one. */
export type Parsed<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: string };

/**
 * One kind of record in the store: how a good one is told from a corrupt
 * one. A new record (hostname claims, DNS-01 leftovers, ...) plugs in by
 * defining its kind (record-kinds.ts has them all) and reading through
 * `RecordReader.read`; the reader does the rest (keep aside, report).
 */
export interface RecordKind<T> {
  /** The record in words, for messages: "certificate", "retry schedule". */
  readonly what: string;
  /**
   * What the caller does instead when the record is corrupt, in words: the
   * safe default, named in the warning (the caller implements it).
   */
  readonly fallback: string;
  /** Parses and checks the shape (and a certificate against its key). Need not catch. */
  parse(raw: Buffer): Parsed<T>;
  /** Validation is costly (certificates): remember the verdict on these exact bytes. */
  readonly cacheable?: boolean;
  /**
   * With `cacheable`: parses bytes that passed `parse` before, skipping only
   * the costly checks. The reader remembers the verdict (a hash); the
   * daemon's pass cache keeps the parsed value across passes in place of
   * the bytes (pass-cache.ts `remember`).
   */
  parseVerified?(raw: Buffer): Parsed<T>;
  /**
   * The value is read-only (its type says so): every read of the same
   * Buffer gets the same value, parsed once. The daemon keeps records
   * across passes (pass-cache.ts), so an idle pass parses nothing again.
   */
  readonly shared?: boolean;
}

export const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
export const bad = <T>(problem: string): Parsed<T> => ({ ok: false, problem });

/**
 * Verdicts kept for cacheable kinds (by hash of the bytes): a few records
 * per certificate, for thousands of certificates (a full cache is emptied,
 * and every record is checked in full again).
 */
const MAX_CACHED = 20_000;

/**
 * Every record read from the store goes through here: parsed, checked,
 * and when it fails, reported as STORE_CORRUPT naming the record, kept
 * aside by the store (`CertStore.quarantine`: never deleted) and returned
 * as missing. The caller then applies the kind's safe default.
 *
 * A local-state problem is never reported with an ACME or platform code:
 * this is the one place it is named.
 */
export class RecordReader {
  private readonly good = new Map<string, unknown>();
  /**
   * Verdicts on these very Buffers (cacheable kinds): within a pass the
   * store hands every reader of a key the same Buffer (pass-cache.ts), so a
   * record read again is not even hashed again.
   */
  private readonly sameBytes = new WeakMap<Buffer, { what: string; value: unknown }>();
  /** Problems not yet handed to a certificate's status, by certificate name. */
  private readonly pending = new Map<string, LocalStateProblem[]>();

  constructor(
    private readonly store: CertStore,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** `once --dry-run`: a corrupt record is named, not moved. */
    private readonly opts: { dryRun?: boolean } = {},
  ) {}

  /**
   * The record at `key`, or undefined when there is none or it was corrupt
   * (kept aside and reported). `cert` names the certificate the record
   * belongs to, so its status can say what happened.
   */
  async read<T>(
    key: string,
    kind: RecordKind<T>,
    ctx: { cert?: string } = {},
  ): Promise<T | undefined> {
    const got = await this.inspect(key, kind, ctx);
    return got.state === 'ok' ? got.value : undefined;
  }

  /** Like `read`, for a caller whose safe default differs from "missing". */
  async inspect<T>(
    key: string,
    kind: RecordKind<T>,
    ctx: { cert?: string } = {},
  ): Promise<
    | { readonly state: 'ok'; readonly value: T }
    | { readonly state: 'missing' }
    | { readonly state: 'corrupt'; readonly error: SidecarError }
  > {
    // A read-only value parsed from bytes the store still vouches for
    // (pass-cache.ts keeps it across passes instead of the bytes).
    const reused = kind.cacheable || kind.shared;
    const known = reused ? this.store.parsed?.(key, kind.what) : undefined;
    if (known) return { state: 'ok', value: known.value as T };
    const raw = await this.store.load(key);
    if (raw === undefined) return { state: 'missing' };
    const parsed = this.parse(raw, kind);
    if (parsed.ok) {
      if (reused) this.store.remember?.(key, raw, kind.what, parsed.value);
      return { state: 'ok', value: parsed.value };
    }
    return { state: 'corrupt', error: await this.corrupt(key, kind, parsed.problem, ctx) };
  }

  /**
   * Vouches for bytes this process has just written from a value it had
   * checked itself (an issued certificate whose key and chain held
   * together): a cacheable kind's verdict on them is "good", so reading
   * them back later in the pass re-checks only the shape (`parseVerified`),
   * not the certificates (X.509 parsing, a key check and a signature
   * verification per read). Bytes changed on disk hash differently and are
   * checked in full. For a kind that is not cacheable, nothing.
   */
  vouch<T>(raw: Buffer | string, kind: RecordKind<T>, value: T): void {
    if (!kind.cacheable) return;
    const hash = `${kind.what}:${createHash('sha256').update(raw).digest('hex')}`;
    if (this.good.size >= MAX_CACHED) this.good.clear();
    this.good.set(hash, kind.parseVerified ? true : value);
  }

  /** Parses without reading or reporting (for values a watch delivered). */
  parse<T>(raw: Buffer, kind: RecordKind<T>): Parsed<T> {
    const same = kind.cacheable || kind.shared ? this.sameBytes.get(raw) : undefined;
    if (same && same.what === kind.what) return ok(same.value as T);
    const hash = kind.cacheable
      ? `${kind.what}:${createHash('sha256').update(raw).digest('hex')}`
      : undefined;
    const verified = hash !== undefined && this.good.has(hash);
    let parsed: Parsed<T>;
    try {
      if (verified && !kind.parseVerified) parsed = ok(this.good.get(hash) as T);
      else if (verified && kind.parseVerified) parsed = kind.parseVerified(raw);
      else parsed = kind.parse(raw);
    } catch (err) {
      parsed = bad(errorMessage(err));
    }
    if (parsed.ok && hash !== undefined) {
      if (!verified) {
        if (this.good.size >= MAX_CACHED) this.good.clear();
        this.good.set(hash, kind.parseVerified ? true : parsed.value);
      }
      this.sameBytes.set(raw, { what: kind.what, value: parsed.value });
    } else if (parsed.ok && kind.shared) {
      this.sameBytes.set(raw, { what: kind.what, value: parsed.value });
    }
    return parsed;
  }

  /**
   * Reports a record found corrupt (by `read`, or by a caller that checks
   * more than the shape, such as a key that does not parse): keeps it aside
   * and says so at warn level with code STORE_CORRUPT.
   */
  async corrupt(
    key: string,
    kind: Pick<RecordKind<unknown>, 'what' | 'fallback'>,
    problem: string,
    ctx: { cert?: string } = {},
  ): Promise<SidecarError> {
    const at = this.clock.now();
    if (this.opts.dryRun) {
      return new SidecarError(
        'STORE_CORRUPT',
        `the ${kind.what} ${key} is corrupt (${problem}); would be kept aside; ${kind.fallback}`,
      );
    }
    const keptAs = await this.store.quarantine(key, at);
    const where = keptAs ? `kept aside as ${keptAs}` : 'already gone';
    const err = new SidecarError(
      'STORE_CORRUPT',
      `the ${kind.what} ${key} is corrupt (${problem}); ${where}; ${kind.fallback}`,
    );
    this.log.warn('corrupt record in the state', {
      code: err.code,
      record: key,
      ...(keptAs && { keptAs }),
      problem,
      fallback: kind.fallback,
      ...(ctx.cert && { cert: ctx.cert }),
    });
    if (ctx.cert !== undefined) {
      const list = this.pending.get(ctx.cert) ?? [];
      list.push({
        code: 'STORE_CORRUPT',
        record: key,
        ...(keptAs && { keptAs }),
        message: err.message,
        at: at.toISOString(),
      });
      this.pending.set(ctx.cert, list);
    }
    return err;
  }

  /** The problems found for `cert` since the last call (for its status). */
  take(cert: string): LocalStateProblem[] {
    const list = this.pending.get(cert) ?? [];
    this.pending.delete(cert);
    return list;
  }
}

// ---- shape helpers for kinds -------------------------------------------------

export type Json = Record<string, unknown>;

/** Parses JSON that must be an object. */
export function jsonObject(raw: Buffer): Parsed<Json> {
  const text = raw.toString('utf8');
  if (text.trim() === '') return bad('empty');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return bad(`not JSON: ${errorMessage(err)}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad('not a JSON object');
  return ok(v as Json);
}

type FieldType = 'string' | 'number' | 'boolean' | 'date' | 'strings' | 'object' | 'array';

/** The first field of `o` that is not as described, or undefined. */
export function shapeProblem(
  o: Json,
  fields: Readonly<Record<string, FieldType | `${FieldType}?`>>,
  where = '',
): string | undefined {
  for (const [name, type] of Object.entries(fields)) {
    const v = o[name];
    const optional = type.endsWith('?');
    if (optional && v === undefined) continue;
    const t = type.replace('?', '');
    const good =
      t === 'string'
        ? typeof v === 'string'
        : t === 'number'
          ? typeof v === 'number' && Number.isFinite(v)
          : t === 'boolean'
            ? typeof v === 'boolean'
            : t === 'date'
              ? typeof v === 'string' && !Number.isNaN(Date.parse(v))
              : t === 'strings'
                ? Array.isArray(v) && v.every((x) => typeof x === 'string')
                : t === 'array'
                  ? Array.isArray(v)
                  : typeof v === 'object' && v !== null && !Array.isArray(v);
    if (!good) return `${where}${name} is ${v === undefined ? 'missing' : `not a ${t}`}`;
  }
  return undefined;
}
