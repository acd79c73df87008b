import type { Lease, Namespace } from 'etcd3';
import { errorMessage } from '../domain/errors.js';
import type { Clock } from '../lifecycle/clock.js';
import type { Logger } from '../util/log.js';
import type { NodeRecord } from './decisions.js';
import type { CoordSealer } from './sealed-coord.js';

import { NODES_PREFIX } from '../store/keys.js';

export { NODES_PREFIX };

export interface NodeRegistryOptions {
  readonly namespace: Namespace;
  readonly nodeName: string;
  readonly ttlSeconds: number;
  /** Seals this node's record and opens the others' (sealed-coord.ts). */
  readonly sealer: CoordSealer;
  /** host:port where this node's nginx serves the challenge path; the leader checks it. */
  readonly selfCheckAddress?: string;
  readonly clock: Clock;
  readonly log: Logger;
}

/**
 * Every node registers itself under `nodes/<name>`, attached to a lease of
 * CLUSTER_LEASE_TTL seconds: a node that dies disappears within the TTL.
 * The record says where its nginx answers challenges and how far its live/
 * has synced; it is rewritten every third of the TTL (`seenAt`), so a
 * record that stops changing is recognisably stale before its lease ends.
 * Challenge tokens this node publishes share the lease.
 */
export class NodeRegistry {
  private lease?: Lease;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private registered = false;
  private record: Omit<NodeRecord, 'seenAt'>;

  constructor(private readonly opts: NodeRegistryOptions) {
    this.record = {
      name: opts.nodeName,
      ...(opts.selfCheckAddress && { selfCheckAddress: opts.selfCheckAddress }),
      syncedRevision: 0,
    };
  }

  start(): void {
    this.newLease();
    void this.publish();
    this.timer = setInterval(() => void this.publish(), (this.opts.ttlSeconds * 1000) / 3);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    // Revoking removes our record and our tokens at once.
    await this.lease?.revoke().catch(() => undefined);
  }

  /** The lease this node's keys live under (renewed if etcd lost it). */
  currentLease(): Lease {
    return this.lease ?? this.newLease();
  }

  /** Merges sync progress into the record and publishes it. */
  async update(
    fields: Partial<Pick<NodeRecord, 'syncedRevision' | 'syncedAt' | 'lastApplyLagMs'>>,
  ): Promise<void> {
    this.record = { ...this.record, ...fields };
    await this.publish();
  }

  own(): NodeRecord {
    return { ...this.record, seenAt: this.opts.clock.now().toISOString() };
  }

  /**
   * Every registered node (live leases only), sorted by name. A record not
   * sealed for its own key is refused and logged: nobody without the
   * cluster key can add a replica or point the leader's self-check at an
   * address of theirs.
   */
  async list(): Promise<NodeRecord[]> {
    const res = await this.opts.namespace.getAll().prefix(NODES_PREFIX).exec();
    const nodes: NodeRecord[] = [];
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      const value = this.opts.sealer.openOrRefuse(
        key,
        kv.value,
        Number(kv.mod_revision),
        this.opts.log,
      );
      const n = value === undefined ? undefined : parseNode(value);
      if (n) nodes.push(n);
    }
    return nodes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  private newLease(): Lease {
    const lease = this.opts.namespace.lease(this.opts.ttlSeconds);
    lease.on('lost', (err) => {
      if (this.stopped || lease !== this.lease) return;
      // Once per outage at warn; the retries while etcd stays away at debug.
      (this.registered ? this.opts.log.warn : this.opts.log.debug).call(
        this.opts.log,
        'node registration lease lost; registering again',
        { error: errorMessage(err) },
      );
      this.registered = false;
      this.lease = undefined;
      if (!this.stopped) setTimeout(() => void this.publish(), 1000);
    });
    this.lease = lease;
    return lease;
  }

  private async publish(): Promise<void> {
    if (this.stopped) return;
    try {
      const key = `${NODES_PREFIX}${this.opts.nodeName}`;
      await this.currentLease()
        .put(key)
        .value(this.opts.sealer.seal(key, JSON.stringify(this.own())));
      if (!this.registered) this.opts.log.info('node registered', { node: this.opts.nodeName });
      this.registered = true;
    } catch (err) {
      this.opts.log.debug('could not refresh the node registration', {
        error: errorMessage(err),
      });
    }
  }
}

/** A record from etcd, checked field by field (it is outside input). */
export function parseNode(value: string): NodeRecord | undefined {
  try {
    const v = JSON.parse(value) as Record<string, unknown>;
    if (typeof v.name !== 'string' || typeof v.seenAt !== 'string') return undefined;
    return {
      name: v.name,
      seenAt: v.seenAt,
      syncedRevision: typeof v.syncedRevision === 'number' ? v.syncedRevision : 0,
      ...(typeof v.selfCheckAddress === 'string' && { selfCheckAddress: v.selfCheckAddress }),
      ...(typeof v.syncedAt === 'string' && { syncedAt: v.syncedAt }),
      ...(typeof v.lastApplyLagMs === 'number' && { lastApplyLagMs: v.lastApplyLagMs }),
    };
  } catch {
    return undefined;
  }
}
