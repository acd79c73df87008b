import type { Etcd3, Namespace, Watcher } from 'etcd3';
import { errorMessage } from '../domain/errors.js';
import type { WebrootResponder } from '../challenge/webroot-responder.js';
import type { LiveDir } from '../deploy/live-dir.js';
import type { HookRunner } from '../hooks/hooks.js';
import type { Clock } from '../lifecycle/clock.js';
import type { LiveTarget } from '../domain/status.js';
import type { Keyring } from '../store/sealed-value.js';
import type { CertStore } from '../store/store.js';
import type { Logger } from '../util/log.js';
import { ChallengeMirror, ClusterResponder } from './challenges.js';
import { syncLag, type LeadershipReason, type NodeRecord } from './decisions.js';
import { LeaderElection, type LeaderView } from './leader.js';
import { NODES_PREFIX, NodeRegistry } from './registry.js';
import { LiveSync, PublishingLive, type ServedCert } from './replica.js';
import { CoordSealer } from './sealed-coord.js';

export interface ClusterOptions {
  /** A connected client; the cluster uses keys under `prefix` only. */
  readonly client: Etcd3;
  /** Coordination key prefix, e.g. `acme-sidecar/<CLUSTER_NAME>/cluster/`. */
  readonly prefix: string;
  /**
   * The cluster key (CLUSTER_ENCRYPTION_KEY_FILE): every value under
   * `prefix` is sealed with it, the full etcd key as associated data.
   */
  readonly keyring: Keyring;
  readonly nodeName: string;
  readonly ttlSeconds: number;
  /** host:port where this node's nginx serves the challenge path (SELF_CHECK_ADDRESS). */
  readonly selfCheckAddress?: string;
  readonly selfCheck: boolean;
  /** The shared store (etcd): certificates and their encrypted keys. */
  readonly store: CertStore;
  /** This node's own live/. */
  readonly live: LiveDir;
  /** This node's own webroot. */
  readonly webroot: WebrootResponder;
  readonly hooks?: HookRunner;
  readonly clock: Clock;
  readonly log: Logger;
  /** Called when this node starts or stops being allowed to act, or the leader changes. */
  readonly onLeaderChange?: (view: LeaderView) => void;
}

/** What /status shows about the cluster. */
export interface ClusterStatus {
  readonly node: string;
  readonly role: 'leader' | 'follower';
  readonly leader: string | null;
  readonly reason: LeadershipReason;
  /** Every registered replica, as last read from etcd. */
  readonly replicas: readonly ReplicaStatus[];
  /** When the replica list was last read from etcd; null if never. */
  readonly replicasReadAt: string | null;
}

export interface ReplicaStatus {
  readonly name: string;
  readonly selfCheckAddress: string | null;
  readonly seenAt: string;
  readonly inSync: boolean;
  /** 0 when in sync; otherwise the age of the newest publication it has not applied. */
  readonly lagSeconds: number;
  readonly syncedAt: string | null;
  /** How long the last certificate it applied took from publication to its live/. */
  readonly lastApplyLagMs: number | null;
}

/**
 * Cluster mode, composed: leader election, this node's registration, the
 * replica sync of live/, the challenge mirror, and the responder the ACME
 * issuers use. Built by the composition root when CLUSTER_ETCD_ENDPOINTS is
 * set.
 */
export class Cluster {
  readonly election: LeaderElection;
  readonly registry: NodeRegistry;
  readonly liveSync: LiveSync;
  readonly mirror: ChallengeMirror;
  readonly responder: ClusterResponder;
  /** The live/ the leader's reconciler writes: publishes to replicas, then writes locally. */
  readonly liveTarget: LiveTarget;
  private readonly ns: Namespace;
  private replicas: NodeRecord[] = [];
  private replicasReadAt?: string;
  private refresher?: NodeJS.Timeout;
  private refreshing = false;
  private again = false;
  private nodesWatch?: Watcher;
  private stopped = false;
  private onElected?: () => void;

  constructor(private readonly opts: ClusterOptions) {
    const { clock, log } = opts;
    this.ns = opts.client.namespace(opts.prefix);
    const sealer = new CoordSealer(opts.keyring, opts.prefix);
    this.election = new LeaderElection({
      namespace: this.ns,
      leaseClient: opts.client.leaseClient,
      nodeName: opts.nodeName,
      ttlSeconds: opts.ttlSeconds,
      clock,
      log: log.child({ component: 'election' }),
      onChange: (view) => {
        opts.onLeaderChange?.(view);
        if (view.role === 'leader') this.onElected?.();
      },
    });
    this.registry = new NodeRegistry({
      namespace: this.ns,
      nodeName: opts.nodeName,
      ttlSeconds: opts.ttlSeconds,
      sealer,
      ...(opts.selfCheckAddress && { selfCheckAddress: opts.selfCheckAddress }),
      clock,
      log: log.child({ component: 'registry' }),
    });
    this.liveSync = new LiveSync({
      namespace: this.ns,
      store: opts.store,
      live: opts.live,
      ...(opts.hooks && { hooks: opts.hooks }),
      registry: this.registry,
      sealer,
      isLeader: () => this.election.verdict().mayAct,
      clock,
      log: log.child({ component: 'replica' }),
    });
    this.mirror = new ChallengeMirror({
      namespace: this.ns,
      local: opts.webroot,
      sealer,
      log: log.child({ component: 'challenges' }),
    });
    this.responder = new ClusterResponder({
      namespace: this.ns,
      registry: this.registry,
      sealer,
      ttlSeconds: opts.ttlSeconds,
      selfCheck: opts.selfCheck,
      clock,
      log: log.child({ component: 'challenges' }),
    });
    this.liveTarget = new PublishingLive(
      opts.live,
      this.ns,
      opts.nodeName,
      clock,
      () => this.election.fenceKey(),
      opts.store,
      sealer,
    );
  }

  /**
   * Registers, starts mirroring tokens and syncing live/, then campaigns.
   * Never waits for etcd: with etcd down the node serves what it has and
   * catches up when etcd returns. `onElected` runs each time this node
   * becomes the leader.
   */
  start(onElected?: () => void): void {
    this.onElected = onElected;
    this.registry.start();
    void this.mirror.start();
    void this.liveSync.start();
    this.election.start();
    void this.refresh();
    // Replica records change on every sync: follow them, so the lag shown
    // is measured against what each replica reported last, not a stale copy.
    void this.watchNodes();
    this.refresher = setInterval(() => void this.refresh(), 5000);
  }

  private async watchNodes(): Promise<void> {
    try {
      const w = await this.ns.watch().prefix(NODES_PREFIX).create();
      if (this.stopped) return void (await w.cancel());
      this.nodesWatch = w;
      w.on('data', () => void this.refresh());
      w.on('error', () => {
        if (!this.stopped) setTimeout(() => void this.watchNodes(), 1000);
      });
    } catch {
      if (!this.stopped) setTimeout(() => void this.watchNodes(), 1000);
    }
  }

  /** Resigns and deregisters; bounded, since etcd may be unreachable. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.refresher);
    await this.nodesWatch?.cancel().catch(() => undefined);
    const bounded = (p: Promise<void>) =>
      Promise.race([p, new Promise<void>((r) => setTimeout(r, 3000).unref())]);
    await bounded(this.election.stop());
    await bounded(this.liveSync.stop());
    await bounded(this.mirror.stop());
    await bounded(this.registry.stop());
  }

  /** May this node act now, and the signal that ends its term. */
  leadership(): { mayAct: boolean; signal?: AbortSignal } {
    const signal = this.election.signal();
    return signal ? { mayAct: true, signal } : { mayAct: false };
  }

  /** A replica's own live/: what it serves, against what the leader published. */
  servedCertificates(): ServedCert[] {
    return this.liveSync.servedCertificates();
  }

  /** Has this replica's live/ been synced from the cluster at least once? */
  hasSynced(): boolean {
    return this.liveSync.hasSynced();
  }

  status(): ClusterStatus {
    const view = this.election.view();
    const head = this.liveSync.publishedHead();
    const now = this.opts.clock.now();
    return {
      node: this.opts.nodeName,
      role: view.role,
      leader: view.leader ?? null,
      reason: view.reason,
      replicas: this.replicas.map((n) => {
        const lag = syncLag(head, n, now);
        return {
          name: n.name,
          selfCheckAddress: n.selfCheckAddress ?? null,
          seenAt: n.seenAt,
          inSync: lag.inSync,
          lagSeconds: lag.lagSeconds,
          syncedAt: n.syncedAt ?? null,
          lastApplyLagMs: n.lastApplyLagMs ?? null,
        };
      }),
      replicasReadAt: this.replicasReadAt ?? null,
    };
  }

  private async refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return;
    }
    this.refreshing = true;
    try {
      do {
        this.again = false;
        this.replicas = await this.registry.list();
        this.replicasReadAt = this.opts.clock.now().toISOString();
      } while (this.again);
    } catch (err) {
      this.opts.log.debug('could not read the replica list', { error: errorMessage(err) });
    } finally {
      this.refreshing = false;
    }
  }
}
