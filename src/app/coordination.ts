import { errorCode, errorMessage } from '../domain/errors.js';
import type { ClusterStatus } from '../cluster/cluster.js';
import type { ServedCert } from '../cluster/replica.js';
import type { AcmePhase } from '../domain/types.js';
import { Reason } from '../lifecycle/reasons.js';
import type { CertStatus } from '../domain/status.js';
import type { Logger } from '../util/log.js';
import { sleep, waitFor, type Sleep } from '../util/retry.js';

/**
 * Who may act, asked by the daemon, the pass, `/status` and the control
 * socket. A node alone always may; in cluster mode only the elected leader,
 * within its term. Everything the app knows of cluster mode goes through
 * this interface, so the app has no `if (cluster)` of its own.
 */
export interface Coordination {
  /** May this node discover, order and push now; the signal ends its term. */
  term(): { mayAct: boolean; signal?: AbortSignal };
  /** Who acts, for messages ("run it on ..."); undefined alone or when unknown. */
  leader(): string | undefined;
  /**
   * A replica that does not act reports what its own live/ serves against
   * what the leader published; undefined when this node acts (its
   * reconciler's view is the truth).
   */
  servedCertificates(target: AcmePhase): CertStatus[] | undefined;
  /** Readiness reasons of a replica that does not act; undefined when it acts. */
  followerReadiness(): string[] | undefined;
  /** For /status and the metrics; undefined alone. */
  status(): ClusterStatus | undefined;
  /**
   * Startup checks, before anything is served or written: rejects for a
   * startup error; resolves false when they cannot be decided yet (join()
   * then keeps trying in the background).
   */
  prepare(): Promise<boolean>;
  /** Joins (sync live/, mirror tokens, campaign) once prepared. */
  join(prepared: boolean, hooks: JoinHooks): void;
  stop(): Promise<void>;
}

export interface JoinHooks {
  /** Runs each time this node becomes the leader (a new leader starts with a full pass). */
  readonly onElected: () => void;
  /** Stops what join() began in the background. */
  readonly signal: AbortSignal;
  /** A fatal error found after join(): the daemon shuts down. */
  readonly onFatal: (err: unknown) => void;
}

/** One node, no etcd: it always acts. */
export const solo: Coordination = {
  term: () => ({ mayAct: true }),
  leader: () => undefined,
  servedCertificates: () => undefined,
  followerReadiness: () => undefined,
  status: () => undefined,
  prepare: async () => true,
  join: () => undefined,
  stop: async () => undefined,
};

/** What the cluster's parts offer the app; `Cluster` (cluster/cluster.ts) has it. */
export interface ClusterParts {
  leadership(): { mayAct: boolean; signal?: AbortSignal };
  status(): ClusterStatus;
  servedCertificates(): readonly ServedCert[];
  hasSynced(): boolean;
  start(onElected: () => void): void;
  stop(): Promise<void>;
}

export interface ClusterCoordinationOptions {
  readonly cluster: ClusterParts;
  readonly nodeName: string;
  readonly clusterName: string;
  /**
   * Is CLUSTER_ENCRYPTION_KEY_FILE the cluster's? Resolves when proven,
   * rejects with STORE_DECRYPT_FAILED for another key, and with anything
   * else while etcd cannot be asked.
   */
  readonly checkKey: () => Promise<unknown>;
  /** Between two key checks while etcd cannot be asked. */
  readonly keyRetryMs?: number;
  /** Sleeps between key checks (tests pass an instant one). */
  readonly sleep?: Sleep;
  readonly log: Logger;
}

/** Cluster mode (CLUSTER_ETCD_ENDPOINTS): the elected leader acts, every replica serves. */
export function clusterCoordination(opts: ClusterCoordinationOptions): Coordination {
  const { cluster, log } = opts;

  /**
   * A replica with another key than the cluster's must never write (or
   * lead): a wrong key fails startup (STORE_DECRYPT_FAILED names both key
   * ids). With etcd unreachable the answer waits; the replica keeps serving
   * its live/ and joins (sync, tokens, election) once the key is proven.
   */
  async function keyProven(): Promise<boolean> {
    try {
      const check = await opts.checkKey();
      log.info('CLUSTER_ENCRYPTION_KEY_FILE is the cluster key', { check });
      return true;
    } catch (err) {
      if (errorCode(err) === 'STORE_DECRYPT_FAILED') throw err;
      log.warn(
        'cannot check CLUSTER_ENCRYPTION_KEY_FILE against etcd yet; serving live/ as it is',
        {
          code: errorCode(err),
          error: errorMessage(err),
        },
      );
      return false;
    }
  }

  return {
    term: () => cluster.leadership(),
    leader: () => cluster.status().leader ?? undefined,
    servedCertificates(target) {
      if (cluster.leadership().mayAct) return undefined;
      return cluster.servedCertificates().map((c) => ({
        name: c.name,
        domains: c.domains,
        phase: c.phase ?? 'foreign',
        notBefore: c.notBefore,
        notAfter: c.notAfter,
        serial: c.serial,
        reason: c.inSync ? Reason.Valid : Reason.LiveOutdated,
        ready: c.inSync && (c.phase === 'production' || c.phase === target),
        attempts: 0,
      }));
    },
    followerReadiness() {
      if (cluster.leadership().mayAct) return undefined;
      return cluster.hasSynced() ? [] : ['live/ has not been synced from the cluster yet'];
    },
    status: () => cluster.status(),
    prepare: keyProven,
    join(prepared, { onElected, signal, onFatal }) {
      log.info('cluster mode', { node: opts.nodeName, cluster: opts.clusterName });
      if (prepared) return cluster.start(onElected);
      // prepare() has just asked: pause before asking again, then keep asking.
      const pause = opts.sleep ?? sleep;
      const intervalMs = opts.keyRetryMs ?? 2000;
      void pause(intervalMs, signal)
        .then(() =>
          waitFor(async () => ((await keyProven()) ? true : undefined), {
            intervalMs,
            signal,
            sleep: pause,
          }),
        )
        .then(
          () => cluster.start(onElected),
          (err: unknown) => {
            if (errorCode(err) === 'ABORTED') return;
            log.error('CLUSTER_ENCRYPTION_KEY_FILE is not the cluster key; not joining', {
              code: errorCode(err),
              error: errorMessage(err),
            });
            onFatal(err);
          },
        );
    },
    stop: () => cluster.stop(),
  };
}
