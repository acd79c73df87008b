/**
 * What the Docker platform learns over time and must not forget at a
 * restart (a restarted daemon, `acme-sidecar once`, a new cluster leader):
 *
 * - which containers asked for which certificates, and when each stopped
 *   serving or went away, so DOCKER_STOPPED_GRACE_HOURS runs from when the
 *   removal was first noticed, not from the last restart (and a container
 *   removed while the sidecar was down is still known by its labels);
 * - which served set (what live/ serves) each reload target was last
 *   signalled for, so an idle first pass signals nobody.
 *
 * Pure: the platform gathers (the engine's listing, the records), these
 * decide, the platform acts and persists the records through the store.
 */
import { createHash } from 'node:crypto';
import type { CertSpec } from '../domain/types.js';

/** One container as remembered across restarts. */
export interface RememberedSource {
  /** The container's name, for messages. */
  readonly name: string;
  /** What it asked for (labels and env), as discovered when it was listed. */
  readonly specs: readonly CertSpec[];
  /** When it stopped serving (ISO 8601); absent: serving when last seen. */
  readonly stoppedAt?: string;
  /** It was no longer listed at all (removed). */
  readonly gone?: boolean;
}

/** The store record `platform/docker-sources.json`: by container id. */
export interface SourcesRecord {
  readonly version: 1;
  readonly sources: Readonly<Record<string, RememberedSource>>;
}

export const EMPTY_SOURCES: SourcesRecord = { version: 1, sources: {} };

/** The store record `platform/docker-reloads.json`: per reload target, the served set it last loaded. */
export interface ReloadRecord {
  readonly version: 1;
  /** Container id -> `servedFingerprint` of what it was last signalled for. */
  readonly targets: Readonly<Record<string, string>>;
}

/** The source id under which a certificate recovered after a lost sources record is kept. */
export const LOST_RECORD_PREFIX = 'lost-record:';

/**
 * Is a source still wanted at `nowMs`? Serving (`stoppedAtMs` undefined):
 * yes. Stopped or removed: while less than `graceMs` has passed since.
 */
export function withinGrace(
  stoppedAtMs: number | undefined,
  nowMs: number,
  graceMs: number,
): boolean {
  return stoppedAtMs === undefined || nowMs - stoppedAtMs < graceMs;
}

/**
 * When a remembered container that is no longer listed stopped serving:
 * its recorded stop, else now. A container seen serving before a restart
 * and gone after it was removed while nobody watched: its grace starts
 * when this process notices, as the README promises ("from when the
 * sidecar noticed"), never at once.
 */
export function restoredStoppedAt(entry: RememberedSource, nowMs: number): number {
  const t = entry.stoppedAt === undefined ? Number.NaN : Date.parse(entry.stoppedAt);
  return Number.isFinite(t) ? t : nowMs;
}

/**
 * The safe default when the sources record is corrupt (or unreadable as
 * one): what was asked for is unknown, so every certificate the store
 * holds is kept as if its container had been removed just now. Each
 * starts a full grace period now, and is renewed until it ends unless a
 * container asks for it again; nothing is dropped at once. A certificate
 * some source asks for this pass is left to that source (the caller).
 */
export function lostRecordSources(
  stored: readonly {
    readonly name: string;
    readonly domains: readonly string[];
    readonly profile?: string;
  }[],
  now: Date,
): SourcesRecord {
  const sources: Record<string, RememberedSource> = {};
  for (const c of stored) {
    if (c.domains.length === 0) continue;
    sources[`${LOST_RECORD_PREFIX}${c.name}`] = {
      name: c.name,
      specs: [
        {
          name: c.name,
          domains: [...c.domains],
          source: `docker:remembered/${c.name}(sources record lost)`,
          ...(c.profile !== undefined && { profile: c.profile }),
        },
      ],
      stoppedAt: now.toISOString(),
      gone: true,
    };
  }
  return { version: 1, sources };
}

/** A short, stable fingerprint of a served set (name and serial of each certificate). */
export function servedFingerprint(
  serving: readonly { readonly name: string; readonly serial: string }[],
): string {
  const text = serving
    .map((s) => `${s.name}:${s.serial}`)
    .sort()
    .join(',');
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/**
 * Which running reload targets to signal: those whose last signal (as
 * remembered, across restarts) was for another served set, or that were
 * never signalled (they may have started before the newest certificate).
 * An idle pass, first in its process or not, signals nobody.
 */
export function reloadsDue(
  targets: readonly string[],
  fingerprint: string,
  last: ReadonlyMap<string, string>,
): string[] {
  return targets.filter((id) => last.get(id) !== fingerprint);
}

// ---- parsing ---------------------------------------------------------------

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isStrings = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every((x) => typeof x === 'string');
const isDate = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));

function parseSpec(v: unknown): CertSpec | undefined {
  if (!isObject(v)) return undefined;
  const { name, domains, source, profile, profileFrom, challenge } = v;
  if (typeof name !== 'string' || typeof source !== 'string' || !isStrings(domains))
    return undefined;
  if (domains.length === 0) return undefined;
  if (profile !== undefined && typeof profile !== 'string') return undefined;
  if (profileFrom !== undefined && typeof profileFrom !== 'string') return undefined;
  if (challenge !== undefined && challenge !== 'http-01' && challenge !== 'dns-01')
    return undefined;
  return {
    name,
    domains,
    source,
    ...(profile !== undefined && { profile }),
    ...(profileFrom !== undefined && { profileFrom }),
    ...(challenge !== undefined && { challenge }),
  };
}

/** The sources record, or a problem in words (store/record-kinds.ts reports it). */
export function parseSourcesRecord(text: string): SourcesRecord | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (!isObject(v) || v.version !== 1 || !isObject(v.sources)) return 'not a sources record';
  const sources: Record<string, RememberedSource> = {};
  for (const [id, raw] of Object.entries(v.sources)) {
    if (!isObject(raw) || typeof raw.name !== 'string' || !Array.isArray(raw.specs)) {
      return `source ${JSON.stringify(id)} is not a remembered source`;
    }
    const specs = raw.specs.map(parseSpec);
    if (specs.some((s) => s === undefined)) return `source ${JSON.stringify(id)} has a bad spec`;
    if (raw.stoppedAt !== undefined && !isDate(raw.stoppedAt)) {
      return `source ${JSON.stringify(id)}: stoppedAt is not a date`;
    }
    if (raw.gone !== undefined && typeof raw.gone !== 'boolean') {
      return `source ${JSON.stringify(id)}: gone is not a boolean`;
    }
    sources[id] = {
      name: raw.name,
      specs: specs as CertSpec[],
      ...(raw.stoppedAt !== undefined && { stoppedAt: raw.stoppedAt }),
      ...(raw.gone === true && { gone: true }),
    };
  }
  return { version: 1, sources };
}

/** The reload record, or a problem in words. */
export function parseReloadRecord(text: string): ReloadRecord | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (!isObject(v) || v.version !== 1 || !isObject(v.targets)) return 'not a reload record';
  for (const [id, fp] of Object.entries(v.targets)) {
    if (typeof fp !== 'string') return `target ${JSON.stringify(id)} has no fingerprint`;
  }
  return { version: 1, targets: v.targets as Record<string, string> };
}

/**
 * How a platform reads and writes one of its records (wired in main.ts
 * through the store's RecordReader). `load` with `persist: false` (dry
 * runs) names a corrupt record without keeping it aside.
 */
export interface RecordSlot<T> {
  load(opts: {
    persist: boolean;
  }): Promise<
    { readonly state: 'ok'; readonly value: T } | { readonly state: 'missing' | 'corrupt' }
  >;
  save(value: T): Promise<void>;
}
