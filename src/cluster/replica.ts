import { X509Certificate } from 'node:crypto';
import type { Namespace } from 'etcd3';
import { SidecarError } from '../domain/errors.js';
import { PHASES, type CertBundle, type Phase, type StoredCert } from '../domain/types.js';
import type { LiveDir } from '../deploy/live-dir.js';
import type { LivePaths, LiveTarget } from '../domain/status.js';
import { certificateEvent, type HookRunner } from '../hooks/hooks.js';
import type { Clock } from '../lifecycle/clock.js';
import { LIVE_PREFIX, storedKey } from '../store/keys.js';
import { storedCertKind } from '../store/record-kinds.js';
import type { CertStore } from '../store/store.js';
import type { Logger } from '../util/log.js';
import { sanNames } from '../util/x509.js';
import type { PublishedHead } from './decisions.js';
import { PrefixMirror, type MirrorEntry } from './prefix-mirror.js';
import type { NodeRegistry } from './registry.js';
import type { CoordSealer } from './sealed-coord.js';

export { LIVE_PREFIX };

/**
 * `live/<name>` in the coordination namespace: which certificate every
 * replica should serve for `<name>`. Only a serial: the certificate and its
 * (encrypted) key are in the shared CertStore, under the phase records the
 * leader wrote before publishing.
 */
export interface LivePointer {
  readonly serial: string;
  /** When the leader published it (ISO 8601). */
  readonly at: string;
  /** The node that published it. */
  readonly by: string;
  /** Which stored record it is, when the publisher found it. */
  readonly phase?: Phase;
}

/** What this replica serves for one certificate (for /status on replicas). */
export interface ServedCert {
  readonly name: string;
  readonly domains: readonly string[];
  readonly serial: string;
  readonly phase?: Phase;
  readonly notBefore: string;
  readonly notAfter: string;
  /** live/ holds the certificate the leader published. */
  readonly inSync: boolean;
}

/** The stored record of `name` with this serial, from any phase. */
async function findStored(
  store: CertStore,
  name: string,
  serial: string,
): Promise<StoredCert | undefined> {
  for (const phase of PHASES) {
    const raw = await store.load(storedKey(name, phase));
    if (!raw) continue;
    // A replica only reads: a corrupt record is the leader's to keep aside
    // (it reads the same key); here it is simply not a match.
    let parsed;
    try {
      parsed = storedCertKind(phase).parse(raw);
    } catch {
      continue;
    }
    if (parsed.ok && parsed.value.meta.serial === serial) return parsed.value;
  }
  return undefined;
}

function serialOf(bundle: CertBundle): string {
  return new X509Certificate(bundle.cert).serialNumber.toUpperCase();
}

/**
 * The leader's live/ in cluster mode: publishes the pointer first, then
 * writes its own live/ (the reconciler holds the certificate's lock). In
 * that order, a replica never reads an older pointer after a newer local
 * write and swaps the older certificate back. The pointer is written in an
 * etcd transaction that commits only while this node's election key
 * exists: a leader whose term ended cannot publish.
 */
export class PublishingLive implements LiveTarget {
  constructor(
    private readonly inner: LiveDir,
    private readonly namespace: Namespace,
    private readonly nodeName: string,
    private readonly clock: Clock,
    /** The election key to compare on; undefined when this node may not act. */
    private readonly fence: () => Promise<string | undefined>,
    private readonly store: CertStore,
    private readonly sealer: CoordSealer,
  ) {}

  async write(name: string, bundle: CertBundle): Promise<void> {
    this.inner.path(name); // validates the name before it becomes a key
    const serial = serialOf(bundle);
    const phase = (await findStored(this.store, name, serial))?.meta.phase;
    const pointer: LivePointer = {
      serial,
      at: this.clock.now().toISOString(),
      by: this.nodeName,
      ...(phase && { phase }),
    };
    const notLeader = () =>
      new SidecarError(
        'CLUSTER_NOT_LEADER',
        `not publishing live/${name}: this node is not the cluster leader`,
      );
    const fence = await this.fence();
    if (!fence) throw notLeader();
    const key = `${LIVE_PREFIX}${name}`;
    const res = await this.namespace
      .if(fence, 'Create', '>', 0)
      .then(this.namespace.put(key).value(this.sealer.seal(key, JSON.stringify(pointer))))
      .commit();
    if (!res.succeeded) throw notLeader();
    await this.inner.write(name, bundle);
  }

  read(name: string, opts?: { kept?: boolean }): Promise<CertBundle | undefined> {
    return this.inner.read(name, opts);
  }

  path(name: string): LivePaths {
    return this.inner.path(name);
  }
}

export interface LiveSyncOptions {
  readonly namespace: Namespace;
  readonly store: CertStore;
  readonly live: LiveDir;
  readonly hooks?: HookRunner;
  readonly registry: NodeRegistry;
  /** Opens each pointer; one not sealed for its key is refused (sealed-coord.ts). */
  readonly sealer: CoordSealer;
  /** The leader's reconciler owns its own live/; the sync leaves it alone then. */
  readonly isLeader: () => boolean;
  readonly clock: Clock;
  readonly log: Logger;
  /** Full resync period, besides the watch. Default 10 s. */
  readonly resyncMs?: number;
}

/**
 * Every replica serves: watches the pointers under `live/` and materializes
 * each certificate into this node's LIVE_DIR/live/<name> with LiveDir's
 * atomic link swap, then runs the same hooks as a single sidecar (nginx
 * reload). A full listing runs at start, on every watch reconnect and
 * every `resyncMs`, so a missed event or an etcd outage heals itself.
 * Only pointers sealed with the cluster key for their own `live/<name>` are
 * applied: a planted or moved pointer changes nothing this node serves.
 */
export class LiveSync {
  private readonly mirror: PrefixMirror;
  /** Highest pointer revision applied with everything up to it. */
  private synced = 0;
  private readonly served = new Map<string, ServedCert>();
  private everSynced = false;
  private head?: PublishedHead;

  constructor(private readonly opts: LiveSyncOptions) {
    this.mirror = new PrefixMirror({
      ...opts,
      prefix: LIVE_PREFIX,
      messages: {
        failed: 'replica sync failed; retrying at the next event or resync',
        watchFailed: 'live/ watch failed; watching again',
        cannotWatch: 'could not watch live/ pointers yet',
      },
      onPut: async ({ key: name, value, revision }) => {
        const ok = await this.apply(name, value, revision);
        // A put after everything else applied moves the sync point.
        if (ok && revision > this.synced) await this.markSynced(revision);
      },
      onResync: (entries) => this.resync(entries),
    });
  }

  start(): Promise<void> {
    return this.mirror.start();
  }

  stop(): Promise<void> {
    return this.mirror.stop();
  }

  /** The newest publication this node has seen. */
  publishedHead(): PublishedHead | undefined {
    return this.head;
  }

  syncedRevision(): number {
    return this.synced;
  }

  /** What live/ holds for every published certificate, by name. */
  servedCertificates(): ServedCert[] {
    return [...this.served.values()];
  }

  /** Has live/ matched the cluster at least once since start? */
  hasSynced(): boolean {
    return this.everSynced;
  }

  /** Applies every pointer; the sync point is the newest when all of them applied. */
  private async resync(entries: readonly MirrorEntry[]): Promise<void> {
    let allOk = true;
    let newest = 0;
    for (const { key: name, value, revision } of entries) {
      newest = Math.max(newest, revision);
      const ok = await this.apply(name, value, revision);
      allOk &&= ok;
    }
    if (allOk && newest >= this.synced) await this.markSynced(newest);
  }

  private async markSynced(revision: number): Promise<void> {
    this.synced = revision;
    this.everSynced = true;
    await this.opts.registry.update({
      syncedRevision: revision,
      syncedAt: this.opts.clock.now().toISOString(),
    });
  }

  /** Brings live/<name> to the pointer's certificate. True when it serves it now. */
  private async apply(name: string, value: string, revision: number): Promise<boolean> {
    const { live, log } = this.opts;
    const pointer = parsePointer(value);
    if (!pointer) {
      log.warn('ignoring a malformed live pointer', { cert: name });
      return true;
    }
    if (!this.head || revision > this.head.revision) this.head = { revision, at: pointer.at };
    const current = await live.read(name).catch(() => undefined);
    this.note(name, current, pointer);
    if (current && serialOf(current) === pointer.serial) return true;
    if (this.opts.isLeader()) return true;
    const record = await this.find(name, pointer.serial);
    if (!record) {
      log.warn('the published certificate is not in the store (yet)', {
        cert: name,
        serial: pointer.serial,
      });
      return false;
    }
    await live.write(name, record.bundle);
    this.note(name, record.bundle, { ...pointer, phase: record.meta.phase });
    const lagMs = Math.max(0, this.opts.clock.now().getTime() - Date.parse(pointer.at));
    log.info('certificate materialized from the cluster', {
      cert: name,
      phase: record.meta.phase,
      serial: pointer.serial,
      publishedBy: pointer.by,
      lagMs,
    });
    await this.opts.registry.update({ lastApplyLagMs: lagMs });
    await this.opts.hooks?.run(certificateEvent(record.meta, live.path(name)), record.bundle);
    return true;
  }

  private find(name: string, serial: string): Promise<StoredCert | undefined> {
    return findStored(this.opts.store, name, serial);
  }

  /** Records what live/<name> holds now, against the pointer. */
  private note(name: string, bundle: CertBundle | undefined, pointer: LivePointer): void {
    if (!bundle) {
      this.served.delete(name);
      return;
    }
    try {
      const leaf = new X509Certificate(bundle.cert);
      const serial = leaf.serialNumber.toUpperCase();
      const inSync = serial === pointer.serial;
      this.served.set(name, {
        name,
        domains: sanNames(leaf),
        serial,
        ...(inSync && pointer.phase && { phase: pointer.phase }),
        notBefore: new Date(leaf.validFrom).toISOString(),
        notAfter: new Date(leaf.validTo).toISOString(),
        inSync,
      });
    } catch {
      this.served.delete(name);
    }
  }
}

export function parsePointer(value: string): LivePointer | undefined {
  try {
    const v = JSON.parse(value) as Record<string, unknown>;
    if (typeof v.serial !== 'string' || !/^[0-9A-F]{1,128}$/.test(v.serial)) return undefined;
    if (typeof v.at !== 'string') return undefined;
    const phase = PHASES.find((p) => p === v.phase);
    return {
      serial: v.serial,
      at: v.at,
      by: typeof v.by === 'string' ? v.by : '',
      ...(phase && { phase }),
    };
  } catch {
    return undefined;
  }
}
