import { SidecarError, errorCode, errorMessage } from '../../domain/errors.js';
import { parseDomainList } from '../../domain/hostnames.js';
import type { CertSpec, StoredCert } from '../../domain/types.js';
import { systemClock, type Clock } from '../../lifecycle/clock.js';
import {
  LOST_RECORD_PREFIX,
  lostRecordSources,
  reloadsDue,
  restoredStoppedAt,
  servedFingerprint,
  withinGrace,
  type RecordSlot,
  type ReloadRecord,
  type RememberedSource,
  type SourcesRecord,
} from '../../lifecycle/platform-memory.js';
import type { Logger } from '../../util/log.js';
import {
  DENT_LABEL,
  DOMAINS_LABEL,
  specsFromHostList,
  specsFromLabels,
  withSpecLabels,
} from '../labels.js';
import type {
  Discovery,
  DiscoveryProblem,
  Platform,
  PlatformWatch,
  ServedCertificate,
} from '../platform.js';
import type {
  ContainerInspect,
  ContainerSummary,
  DockerEngineClient,
  EngineEvent,
  ReloadSignal,
} from './engine-client.js';

/** This project's label selecting the containers to signal after a change (e.g. nginx). */
export const RELOAD_LABEL = 'io.acme-sidecar.reload';

/** States in which a container serves: its hostnames are wanted. */
const SERVING_STATES = new Set(['running', 'restarting', 'paused']);
/** Container events after which the wanted hostnames may differ. */
const WATCHED_ACTIONS = ['start', 'die', 'destroy'];

export interface DockerPlatformOptions {
  /** DOCKER_HOST and DOMAINS_FILE entries, unioned with the labels; read at every discovery. */
  readonly domains: () => Promise<string>;
  readonly log: Logger;
  /**
   * Environment variables read as hostname lists, first one set wins
   * (nginx-proxy's `LETSENCRYPT_HOST`, `VIRTUAL_HOST`). Empty: none read.
   */
  readonly envHostnames?: readonly string[];
  /** How long a stopped (or removed) container's hostnames are still wanted. */
  readonly stoppedGraceMs: number;
  /** Containers signalled after live/ changed: `key` or `key=value`; undefined: none. */
  readonly reloadLabel?: string;
  readonly reloadSignal?: ReloadSignal;
  readonly clock?: Clock;
  /**
   * Where the containers seen (what they asked for, when they stopped or
   * went) are kept across restarts, so the grace period runs from when a
   * removal was first noticed by any process (a restarted daemon, `once`,
   * a new cluster leader). Without it: this process's memory only.
   */
  readonly sources?: RecordSlot<SourcesRecord>;
  /**
   * The certificates the store holds, for the sources record's safe default
   * when it is corrupt (store/record-kinds.ts sourcesKind).
   */
  readonly storedCertificates?: () => Promise<
    { name: string; domains: readonly string[]; profile?: string }[]
  >;
  /**
   * Where each reload target's last served set is kept across restarts, so
   * an idle first pass signals nobody. Without it: this process's memory.
   */
  readonly reloads?: RecordSlot<ReloadRecord>;
  /** Events arriving within this window make one change notification. Default 200 ms. */
  readonly eventDebounceMs?: number;
  /** Event stream reconnection backoff: first delay, doubled up to the max. Default 500 ms / 30 s. */
  readonly reconnectMinMs?: number;
  readonly reconnectMaxMs?: number;
}

/** What is remembered of one container between discoveries. */
interface KnownContainer {
  readonly name: string;
  /** Labels never change after a container is created: parsed once. */
  readonly fromLabels: Discovery;
  /** Env never changes either; undefined until read (only when envHostnames is set). */
  fromEnv?: Discovery;
  state?: string;
  /** When it stopped serving (ms): FinishedAt, or when we saw it gone. */
  stoppedAt?: number;
  /** Set once it is no longer listed at all. */
  gone?: boolean;
  /** Recovered from the store's certificates after the sources record was lost. */
  lostRecord?: boolean;
}

function stringLabels(labels: ContainerSummary['Labels']): Record<string, string> {
  if (!labels || typeof labels !== 'object') return {};
  return Object.fromEntries(
    Object.entries(labels).filter((e): e is [string, string] => typeof e[1] === 'string'),
  );
}

function containerName(c: ContainerSummary): string {
  const n = c.Names?.find((x) => typeof x === 'string');
  return (n ?? c.Id.slice(0, 12)).replace(/^\//, '');
}

/** The container asks for certificates (or for something we report). */
function declares(k: KnownContainer): boolean {
  return [k.fromLabels, k.fromEnv].some(
    (d) => d !== undefined && d.specs.length + d.problems.length > 0,
  );
}

/** A valid stop time from inspect, or undefined (never started: `0001-01-01...`). */
function finishedAt(i: ContainerInspect | undefined): number | undefined {
  const t = Date.parse(i?.State?.FinishedAt ?? '');
  return Number.isFinite(t) && t > 0 ? t : undefined;
}

/**
 * Plain Docker: hostnames from container labels (this project's and the
 * Dent label, as on Rancher) and optionally nginx-proxy's environment
 * variables, unioned with DOMAINS. Certificates stay in the shared volume
 * (live/), so nothing is pushed; after a change the containers carrying the
 * reload label (nginx) are sent SIGHUP through the Engine API.
 */
export class DockerPlatform implements Platform {
  readonly name = 'docker';
  readonly holdsCertificates = false;
  private readonly known = new Map<string, KnownContainer>();
  /** Per signalled container: the served set it was last told about. */
  private readonly reloaded = new Map<string, string>();
  private readonly clock: Clock;
  /** The sources record as last read or written (JSON); undefined until read. */
  private savedSources: string | undefined;
  /** The reload record as last read or written (JSON); undefined until read. */
  private savedReloads: string | undefined;

  constructor(
    private readonly client: DockerEngineClient,
    private readonly opts: DockerPlatformOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  async discover(opts: { persist?: boolean } = {}): Promise<Discovery> {
    const persist = opts.persist !== false;
    const fromEnv = parseDomainList(await this.opts.domains(), 'env:DOMAINS');
    const specs: CertSpec[] = [...fromEnv.specs];
    const problems: DiscoveryProblem[] = [...fromEnv.problems];
    // Throws when the engine cannot be read: never "no containers" on error.
    const list = await this.client.listContainers();
    const now = this.clock.now().getTime();
    // First discovery in this process: what earlier processes saw.
    const remembered = await this.restoreSources(persist);
    const listed = new Set<string>();
    for (const c of list) {
      listed.add(c.Id);
      // Listed again: read from the engine as usual; the record is not needed.
      remembered.delete(c.Id);
      let k = this.known.get(c.Id);
      if (!k) {
        const name = containerName(c);
        k = {
          name,
          fromLabels: specsFromLabels(
            stringLabels(c.Labels),
            `docker:container/${name}(${c.Id.slice(0, 12)})`,
          ),
        };
        this.known.set(c.Id, k);
      }
      k.gone = false;
      const serving = SERVING_STATES.has(c.State ?? '');
      let inspected: ContainerInspect | undefined;
      const inspect = async (): Promise<ContainerInspect | undefined> =>
        (inspected ??= await this.client.inspect(c.Id));
      if (this.opts.envHostnames?.length && !k.fromEnv) {
        k.fromEnv = withSpecLabels(
          stringLabels(c.Labels),
          this.envHostnames(await inspect(), `${k.name}(${c.Id.slice(0, 12)})`),
          `docker:container/${k.name}(${c.Id.slice(0, 12)})`,
        );
      }
      if (serving) {
        k.stoppedAt = undefined;
      } else if (!declares(k)) {
        // Nothing to keep renewing: no need to ask when it stopped.
        k.stoppedAt = Number.NEGATIVE_INFINITY;
      } else if (k.stoppedAt === undefined || k.state !== c.State) {
        // Never started (or vanished meanwhile): as if stopped long ago, never wanted.
        k.stoppedAt = finishedAt(await inspect()) ?? Number.NEGATIVE_INFINITY;
      }
      k.state = c.State;
    }
    // Remembered but no longer listed: removed while no process watched, or
    // in its grace period when the last one stopped.
    for (const [id, r] of remembered) {
      if (this.known.has(id)) continue;
      this.known.set(id, {
        name: r.name,
        fromLabels: { specs: r.specs, problems: [] },
        stoppedAt: restoredStoppedAt(r, now),
        gone: true,
        ...(id.startsWith(LOST_RECORD_PREFIX) && { lostRecord: true }),
      });
    }
    for (const [id, k] of this.known) {
      if (listed.has(id)) continue;
      // Removed and never declared anything: nothing to remember.
      if (!declares(k)) {
        this.known.delete(id);
        continue;
      }
      if (!k.gone) {
        k.gone = true;
        // Removed: from when it stopped, if we saw it stopped; else from now.
        k.stoppedAt ??= now;
      }
    }
    const requested = new Set<string>();
    for (const [id, k] of this.known) {
      if (k.lostRecord) continue;
      if (!withinGrace(k.stoppedAt, now, this.opts.stoppedGraceMs)) {
        if (k.gone) this.known.delete(id);
        continue;
      }
      for (const d of [k.fromLabels, k.fromEnv]) {
        if (!d) continue;
        specs.push(...d.specs);
        problems.push(...d.problems);
      }
    }
    for (const s of specs) requested.add(s.name);
    // Recovered after a lost record: only what no source asks for now.
    for (const [id, k] of this.known) {
      if (!k.lostRecord) continue;
      const wanted = k.fromLabels.specs.filter((s) => !requested.has(s.name));
      if (wanted.length === 0 || !withinGrace(k.stoppedAt, now, this.opts.stoppedGraceMs)) {
        this.known.delete(id);
        continue;
      }
      specs.push(...wanted);
    }
    if (persist) await this.saveSources(now);
    // Every request as found: the Discoverer decides who gets a name (lifecycle/ownership.ts).
    return { specs, problems };
  }

  /**
   * The containers earlier processes saw and this one does not know yet,
   * read once per process (again at the next discovery if the store did
   * not answer). A corrupt record: every certificate the store holds
   * starts its grace period now (store/record-kinds.ts sourcesKind).
   */
  private async restoreSources(persist: boolean): Promise<Map<string, RememberedSource>> {
    const slot = this.opts.sources;
    if (!slot || this.savedSources !== undefined) return new Map();
    let got;
    try {
      got = await slot.load({ persist });
    } catch (err) {
      this.opts.log.warn(
        'could not read the containers seen before; reading them at the next pass',
        {
          code: errorCode(err),
          error: errorMessage(err),
        },
      );
      return new Map();
    }
    let record: SourcesRecord = { version: 1, sources: {} };
    if (got.state === 'ok') {
      record = got.value;
      this.savedSources = JSON.stringify(record);
    } else if (got.state === 'missing') {
      this.savedSources = JSON.stringify(record);
    } else {
      // Kept aside and reported by the reader; `savedSources` stays unlike
      // what is written, so the record is rewritten at once.
      const stored = (await this.opts.storedCertificates?.().catch(() => undefined)) ?? [];
      record = lostRecordSources(stored, this.clock.now());
      this.savedSources = '';
    }
    return new Map(Object.entries(record.sources));
  }

  /** Writes the sources record when what it would say changed; a failure is retried next pass. */
  private async saveSources(now: number): Promise<void> {
    const slot = this.opts.sources;
    if (!slot || this.savedSources === undefined) return;
    const sources: Record<string, RememberedSource> = {};
    for (const [id, k] of [...this.known].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      if (!declares(k) || !withinGrace(k.stoppedAt, now, this.opts.stoppedGraceMs)) continue;
      const specs = [...k.fromLabels.specs, ...(k.fromEnv?.specs ?? [])];
      if (specs.length === 0) continue;
      sources[id] = {
        name: k.name,
        specs,
        ...(k.stoppedAt !== undefined &&
          Number.isFinite(k.stoppedAt) && { stoppedAt: new Date(k.stoppedAt).toISOString() }),
        ...(k.gone && { gone: true }),
      };
    }
    const text = JSON.stringify({ version: 1, sources } satisfies SourcesRecord);
    if (text === this.savedSources) return;
    try {
      await slot.save(JSON.parse(text) as SourcesRecord);
      this.savedSources = text;
    } catch (err) {
      this.opts.log.warn('could not save the containers seen; saving at the next pass', {
        code: errorCode(err),
        error: errorMessage(err),
      });
    }
  }

  /** The first of the configured variables the container sets, as one certificate. */
  private envHostnames(i: ContainerInspect | undefined, container: string): Discovery {
    const env = Array.isArray(i?.Config?.Env) ? i.Config.Env : [];
    for (const variable of this.opts.envHostnames ?? []) {
      const entry = env.find((e) => typeof e === 'string' && e.startsWith(`${variable}=`));
      if (entry === undefined) continue;
      // Only this variable's value is read; the rest of the environment may hold secrets.
      return specsFromHostList(
        entry.slice(variable.length + 1),
        `docker:container/${container}:env:${variable}`,
      );
    }
    return { specs: [], problems: [] };
  }

  async read(): Promise<undefined> {
    return undefined;
  }

  async push(_cert: StoredCert): Promise<void> {}

  /**
   * Signals every running container with the reload label whose last signal
   * was for another served set (or that was never signalled: it may have
   * started before the newest certificate). What each was last signalled
   * for is kept in the store (`reloads`), so an idle first pass of a new
   * process signals nobody. A failed signal is retried at the next pass;
   * the others still go out.
   */
  async reload(serving: readonly ServedCertificate[]): Promise<void> {
    const selector = this.opts.reloadLabel;
    if (!selector) return;
    const signal = this.opts.reloadSignal ?? 'HUP';
    const served = servedFingerprint(serving);
    const targets = await this.client.listContainers({
      label: [selector],
      status: ['running'],
    });
    await this.restoreReloads();
    const present = new Set(targets.map((t) => t.Id));
    for (const id of this.reloaded.keys()) if (!present.has(id)) this.reloaded.delete(id);
    const due = new Set(
      reloadsDue(
        targets.map((t) => t.Id),
        served,
        this.reloaded,
      ),
    );
    const failures: { name: string; err: unknown }[] = [];
    for (const t of targets) {
      if (!due.has(t.Id)) continue;
      const name = containerName(t);
      try {
        if (!(await this.client.signal(t.Id, signal))) continue; // stopped meanwhile
        this.reloaded.set(t.Id, served);
        this.opts.log.info(`sent SIG${signal} so the server reloads its certificates`, {
          container: name,
          certificates: serving.length,
        });
      } catch (err) {
        failures.push({ name, err });
      }
    }
    await this.saveReloads();
    const first = failures[0];
    if (first) {
      const code = errorCode(first.err);
      throw new SidecarError(
        code === 'UNKNOWN' ? 'PLATFORM_UNAVAILABLE' : code,
        `could not signal ${failures.map((f) => f.name).join(', ')} to reload: ${errorMessage(first.err)}`,
        { retryable: true },
      );
    }
  }

  /**
   * What reload targets were last signalled for, read once per process. A
   * missing, corrupt or unreadable record: nobody known to have been
   * signalled, so every target is signalled once (store/record-kinds.ts
   * reloadsKind).
   */
  private async restoreReloads(): Promise<void> {
    const slot = this.opts.reloads;
    if (!slot || this.savedReloads !== undefined) return;
    try {
      const got = await slot.load({ persist: true });
      if (got.state === 'ok') {
        for (const [id, fp] of Object.entries(got.value.targets)) {
          if (!this.reloaded.has(id)) this.reloaded.set(id, fp);
        }
      }
      this.savedReloads = got.state === 'ok' ? JSON.stringify(got.value) : '';
    } catch (err) {
      this.savedReloads = '';
      this.opts.log.warn('could not read which servers were signalled; signalling them all', {
        code: errorCode(err),
        error: errorMessage(err),
      });
    }
  }

  /** Writes the reload record when it changed; a failure is retried next pass. */
  private async saveReloads(): Promise<void> {
    const slot = this.opts.reloads;
    if (!slot) return;
    const targets = Object.fromEntries([...this.reloaded].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
    const record: ReloadRecord = { version: 1, targets };
    const text = JSON.stringify(record);
    if (text === this.savedReloads) return;
    try {
      await slot.save(record);
      this.savedReloads = text;
    } catch (err) {
      this.opts.log.warn('could not save which servers were signalled; saving at the next pass', {
        code: errorCode(err),
        error: errorMessage(err),
      });
    }
  }

  /**
   * Follows the engine's container events (start, die, destroy) and calls
   * `onChange` shortly after each burst. When the stream drops it
   * reconnects with backoff, and `onChange` runs once it is back, since
   * events may have been missed meanwhile.
   */
  watch(onChange: (why: string) => void): PlatformWatch {
    const log = this.opts.log;
    const stop = new AbortController();
    const debounceMs = this.opts.eventDebounceMs ?? 200;
    const minDelay = this.opts.reconnectMinMs ?? 500;
    const maxDelay = this.opts.reconnectMaxMs ?? 30_000;
    let debounce: NodeJS.Timeout | undefined;
    let reasons: string[] = [];
    const changed = (why: string): void => {
      reasons.push(why);
      if (debounce) return;
      debounce = setTimeout(() => {
        debounce = undefined;
        const why =
          reasons.length > 3 ? `${reasons.slice(0, 3).join('; ')}; ...` : reasons.join('; ');
        reasons = [];
        onChange(why);
      }, debounceMs);
    };
    const onEvent = (e: EngineEvent): void => {
      const id = e.Actor?.ID ?? e.id;
      const action = e.Action ?? '';
      if (e.Type !== 'container' || !WATCHED_ACTIONS.includes(action) || typeof id !== 'string') {
        return;
      }
      const k = this.known.get(id);
      // Its state changed: re-read when it stopped at the next discovery.
      if (k) k.state = undefined;
      // The event carries the container's labels: a busy host's unrelated
      // containers (CI jobs, one-off runs) start no pass.
      const attrs = e.Actor?.Attributes ?? {};
      const relevant =
        (k !== undefined && declares(k)) ||
        DOMAINS_LABEL in attrs ||
        DENT_LABEL in attrs ||
        (this.opts.envHostnames?.length ?? 0) > 0;
      if (!relevant) return;
      const name = attrs.name;
      changed(`docker: container ${typeof name === 'string' ? name : id.slice(0, 12)} ${action}`);
    };

    const loop = (async () => {
      let delay = minDelay;
      let opened = false;
      while (!stop.signal.aborted) {
        try {
          await this.client.streamEvents(
            { type: ['container'], event: WATCHED_ACTIONS },
            onEvent,
            stop.signal,
            () => {
              delay = minDelay;
              if (opened) {
                log.info('Docker event stream back; resyncing');
                changed('docker: event stream reconnected');
              } else {
                log.info('following Docker container events');
              }
              opened = true;
            },
          );
          if (stop.signal.aborted) break;
          log.warn('Docker event stream ended; reconnecting', { inMs: delay });
        } catch (err) {
          if (stop.signal.aborted) break;
          log.warn('Docker event stream failed; reconnecting', {
            code: errorCode(err),
            error: errorMessage(err),
            inMs: delay,
          });
        }
        await new Promise<void>((resolve) => {
          const wake = (): void => {
            clearTimeout(t);
            stop.signal.removeEventListener('abort', wake);
            resolve();
          };
          const t = setTimeout(wake, delay * (0.75 + Math.random() / 2));
          stop.signal.addEventListener('abort', wake, { once: true });
        });
        delay = Math.min(delay * 2, maxDelay);
      }
    })();

    return {
      close: async () => {
        stop.abort();
        clearTimeout(debounce);
        debounce = undefined;
        await loop;
      },
    };
  }
}
