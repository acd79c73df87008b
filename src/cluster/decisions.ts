/**
 * Cluster decisions as pure functions of their facts and `now` (no I/O, no
 * Date.now()): may this node act as the leader, how far behind is a
 * replica, which replicas must serve a challenge token, and is a fan-out
 * complete. The cluster classes gather the facts and act on the answers.
 */

/** Why this node may or may not act; logs, /status and metrics say the same word. */
export const LeadershipReason = {
  /** Elected, and etcd confirmed the election lease recently enough. */
  Leader: 'Leader',
  /** Another node holds the election (or none does yet). */
  NotElected: 'NotElected',
  /** Elected, but the lease has not been confirmed since election. */
  LeaseUnconfirmed: 'LeaseUnconfirmed',
  /**
   * Elected, but the last confirmation is too old: etcd may already have
   * expired the lease and elected someone else (partition, etcd down).
   */
  LeaseExpiring: 'LeaseExpiring',
} as const;
export type LeadershipReason = (typeof LeadershipReason)[keyof typeof LeadershipReason];

export interface LeadershipFacts {
  /** The campaign reported `elected` and has not failed since. */
  readonly elected: boolean;
  /**
   * The latest time the election lease is known to be alive until: the
   * moment a TTL query was *sent* plus the remaining TTL etcd answered (it
   * expires in no less than that). Undefined before the first answer.
   */
  readonly leaseAliveUntil?: Date;
  /**
   * Stop this long before `leaseAliveUntil`: room for clock drift between
   * this node and etcd, and for a step already started to notice.
   */
  readonly marginMs: number;
}

export type LeadershipVerdict =
  | { readonly mayAct: true; readonly reason: 'Leader'; readonly untilMs: number }
  | { readonly mayAct: false; readonly reason: Exclude<LeadershipReason, 'Leader'> };

/**
 * May this node discover, order, renew and push now? Only while elected and
 * while the election lease is provably alive: a leader cut off from etcd
 * stops on its own before etcd can hand leadership to another node, so two
 * nodes never act at once (the per-certificate lock is the second fence).
 */
export function leadership(f: LeadershipFacts, now: Date): LeadershipVerdict {
  if (!f.elected) return { mayAct: false, reason: LeadershipReason.NotElected };
  if (!f.leaseAliveUntil) return { mayAct: false, reason: LeadershipReason.LeaseUnconfirmed };
  const untilMs = f.leaseAliveUntil.getTime() - f.marginMs;
  if (now.getTime() >= untilMs) return { mayAct: false, reason: LeadershipReason.LeaseExpiring };
  return { mayAct: true, reason: LeadershipReason.Leader, untilMs };
}

/**
 * What one answer to "how long has the election lease left?" proves: the
 * lease lives at least until the query was sent plus the remaining TTL etcd
 * answered (whole seconds, rounded down). Undefined when it proves nothing:
 * a remaining TTL above the granted one is etcd's "forever", the answer of
 * a member whose lease table is not primary (a newly elected etcd leader
 * before it takes the leases over), not a time the lease is known to live.
 * A remaining TTL of 0 or less is an expired lease, for the caller to handle.
 */
export function confirmedLeaseEnd(
  sentAt: Date,
  remainingTtlSeconds: number,
  grantedTtlSeconds: number,
): Date | undefined {
  if (!(remainingTtlSeconds > 0) || remainingTtlSeconds > grantedTtlSeconds) return undefined;
  return new Date(sentAt.getTime() + remainingTtlSeconds * 1000);
}

/**
 * When to ask etcd again how long the election lease has left: on the
 * regular beat, but never later than halfway to the end of the term already
 * confirmed. etcd answers whole seconds rounded down, so a query that lands
 * just before a late keep-alive proves a second less than the lease really
 * has; with a short TTL that window (TTL 3 s: 1 s minus the margin) is
 * shorter than the beat, and a leader with a live lease and a quorum would
 * stop acting until the next beat. Not before `minMs` (no busy loop).
 */
export function nextConfirmInMs(
  v: LeadershipVerdict,
  now: Date,
  beatMs: number,
  minMs: number,
): number {
  if (!v.mayAct) return beatMs;
  const half = (v.untilMs - now.getTime()) / 2;
  return Math.max(minMs, Math.min(beatMs, Math.floor(half)));
}

/** The newest certificate the leader published for replicas to serve. */
export interface PublishedHead {
  /** etcd mod revision of the newest published pointer. */
  readonly revision: number;
  /** When the leader published it (ISO 8601). */
  readonly at: string;
}

/** What a replica reports about its own live/ directory. */
export interface ReplicaSync {
  /** The highest pointer revision it has materialized, everything below included. */
  readonly syncedRevision: number;
  /** When it last finished a sync (ISO 8601). */
  readonly syncedAt?: string;
}

export interface SyncLag {
  readonly inSync: boolean;
  /** 0 when in sync; otherwise how long the newest publication has waited for this replica. */
  readonly lagSeconds: number;
}

/**
 * How far a replica's live/ is behind what the leader published. A replica
 * that has applied the newest pointer is in sync however long ago that
 * was; one that has not is behind by the age of that pointer.
 */
export function syncLag(head: PublishedHead | undefined, replica: ReplicaSync, now: Date): SyncLag {
  if (!head || replica.syncedRevision >= head.revision) return { inSync: true, lagSeconds: 0 };
  const published = Date.parse(head.at);
  const lagMs = Number.isNaN(published) ? 0 : Math.max(0, now.getTime() - published);
  return { inSync: false, lagSeconds: Math.round(lagMs / 100) / 10 };
}

/** A registered node, as the registry in etcd holds it. */
export interface NodeRecord {
  readonly name: string;
  /** host:port where this node's nginx answers /.well-known/acme-challenge/. */
  readonly selfCheckAddress?: string;
  /** Refreshed every third of the lease TTL while the node runs (ISO 8601). */
  readonly seenAt: string;
  readonly syncedRevision: number;
  readonly syncedAt?: string;
  /** How long the last applied publication took to reach this node's live/. */
  readonly lastApplyLagMs?: number;
}

/**
 * Which registered nodes must serve a token before the CA is told to look:
 * every node seen within the lease TTL. A node whose registration lingers
 * after it died (its lease not yet expired) is not waited for once its
 * heartbeat is older than the TTL; it cannot be answering the CA either.
 */
export function replicasToCheck(
  nodes: readonly NodeRecord[],
  now: Date,
  ttlMs: number,
): NodeRecord[] {
  return nodes.filter((n) => {
    const seen = Date.parse(n.seenAt);
    return !Number.isNaN(seen) && now.getTime() - seen <= ttlMs;
  });
}

/** One replica's answer to "do you serve this token?". */
export interface TokenCheck {
  readonly node: string;
  readonly ok: boolean;
  readonly detail?: string;
}

export type FanoutVerdict =
  | { readonly kind: 'ready' }
  | { readonly kind: 'wait'; readonly missing: readonly TokenCheck[] }
  | { readonly kind: 'failed'; readonly missing: readonly TokenCheck[] };

/**
 * Is a challenge token served by every replica that must serve it? Wait
 * while some do not and the deadline has not passed; fail after it. No
 * replica to check is not "ready": at least this node must be registered.
 */
export function fanoutVerdict(
  required: readonly string[],
  checks: readonly TokenCheck[],
  now: Date,
  deadline: Date,
): FanoutVerdict {
  const byNode = new Map(checks.map((c) => [c.node, c]));
  const missing = required.map(
    (node) => byNode.get(node) ?? { node, ok: false, detail: 'not checked yet' },
  );
  const notOk = missing.filter((c) => !c.ok);
  if (required.length > 0 && notOk.length === 0) return { kind: 'ready' };
  const why =
    required.length === 0
      ? [{ node: '(none)', ok: false, detail: 'no replica registered' }]
      : notOk;
  return now >= deadline ? { kind: 'failed', missing: why } : { kind: 'wait', missing: why };
}
