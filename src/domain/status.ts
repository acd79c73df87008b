/**
 * What the whole house says about a certificate and where it is served:
 * the reconciler fills a `CertStatus`; `/status`, the page, the control
 * socket, metrics and cluster mode read it. Types and constants only; this
 * module imports nothing but other domain modules.
 */
import type { PersistRecordStatus } from './dns-persist.js';
import type { AcmePhase, CertBundle, Phase } from './types.js';
import type { ReconcileReason, Reason } from '../lifecycle/reasons.js';

/** The files of one certificate under live/, as nginx reads them. */
export interface LivePaths {
  readonly dir: string;
  readonly cert: string;
  readonly chain: string;
  readonly fullchain: string;
  readonly privkey: string;
}

/** Where the certificate nginx serves lives (a local directory, in every mode). */
export interface LiveTarget {
  write(name: string, bundle: CertBundle): Promise<void>;
  /** `kept`: may serve a bundle read before while a watch says nothing changed (live-dir.ts). */
  read(name: string, opts?: { kept?: boolean }): Promise<CertBundle | undefined>;
  path(name: string): LivePaths;
  /**
   * Optional (live-dir.ts): the identity of the bundle kept for `name` while
   * the watch says live/<name> has not changed since it was read; undefined
   * when nothing vouches for it. Never reads.
   */
  kept?(name: string): object | undefined;
}

export type DeploymentState = 'current' | 'stale' | 'unreachable';

export interface DeploymentCheck {
  /** `host:port` (`[v6]:port`), as in DEPLOY_CHECK_ENDPOINTS. */
  readonly endpoint: string;
  /**
   * `current`: the expected certificate is served. `stale`: another one is
   * (renewed but not reloaded). `unreachable`: no TLS handshake, so no answer
   * either way.
   */
  readonly state: DeploymentState;
  /** Upper-case hex serial of the certificate served, when there was a handshake. */
  readonly servedSerial?: string;
  readonly error?: string;
}

/** A hostname or label the platform handed us that we could not use. */
export interface DiscoveryProblem {
  readonly source: string;
  readonly value: string;
  readonly code: string;
  readonly message: string;
}

/** What the platform holds under a certificate's name. */
export interface PlatformCopy {
  /** The platform's own id for it, when it has one. */
  readonly id?: string;
  /** Serial number, upper-case hex without leading zeros. */
  readonly serial: string;
  /** ISO 8601, when the platform says. */
  readonly notAfter?: string;
  /** Created by this sidecar for this very name; anything else is never overwritten. */
  readonly ours: boolean;
  /** Created by this sidecar, but for another certificate name (so not `ours`). */
  readonly ownedBy?: string;
}

/**
 * A problem with the sidecar's own state (not the CA's, not the
 * platform's): a record that failed validation and was kept aside.
 */
export interface LocalStateProblem {
  readonly code: 'STORE_CORRUPT';
  /** The store key of the record. */
  readonly record: string;
  /** Where it was kept aside. */
  readonly keptAs?: string;
  readonly message: string;
  /** ISO 8601. */
  readonly at: string;
}

/** What is known about one certificate, for `once`, logs and /status. */
export interface CertStatus {
  readonly name: string;
  readonly domains: readonly string[];
  /** The ACME profile asked for (ACME_PROFILE or a label), if any. */
  readonly profile?: string;
  /** Phase of the certificate nginx serves now. */
  phase: Phase | 'foreign' | 'none';
  notBefore?: string;
  notAfter?: string;
  serial?: string;
  renewAt?: string;
  /** Where `renewAt` came from: the CA's ARI window (RFC 9773) or the lifetime rule. */
  renewSource?: 'ari' | 'lifetime';
  /** The CA's page explaining its renewal window (e.g. a mass revocation). */
  explanationUrl?: string;
  /** When the daemon asks the CA for renewal information again (ISO). */
  ariCheckAt?: string;
  /** The last decision's reason. */
  reason: Reason | typeof ReconcileReason.Backoff;
  /** True when serving a valid certificate from the target CA. */
  ready: boolean;
  attempts: number;
  lastError?: { code: string; message: string; at: string };
  nextRetry?: string;
  /**
   * Records of this certificate found corrupt in the last pass that found
   * any, and what was done (kept aside; `recovered` says how it healed).
   */
  localState?: readonly LocalStateProblem[];
  /** How the last local-state problem was healed: `adopted` from live/, or `reissued`. */
  recovered?: 'adopted' | 'reissued';
  /** When live/ last changed for it (ISO). */
  deployedAt?: string;
  /** The last deployment check: is every endpoint serving this certificate? */
  deployment?: { checkedAt: string; stale: boolean; endpoints: DeploymentCheck[] };
}

/**
 * The JSON served at `/status`, and the only input of the HTML page and of
 * `acme-sidecar status`.
 *
 * Built by picking fields one by one (never by spreading a `CertStatus`), so
 * a field added to the reconciler's status later cannot reach this surface
 * without someone deciding it should. Nothing here is secret.
 */
export interface StatusSnapshot {
  /** ISO 8601, the `now` the snapshot was built at. */
  readonly generatedAt: string;
  /** The CA phase the sidecar is configured to reach. */
  readonly target: AcmePhase;
  /** Platform name (`static`, `rancher`, `docker`, ...). */
  readonly platform: string;
  /** The last reconcile pass, or null before the first one has finished. */
  readonly lastPass: LastPass | null;
  /** Sorted by name. */
  readonly certificates: readonly StatusCertificate[];
  /** Hostnames or labels discovery skipped, in discovery order. */
  readonly problems: readonly DiscoveryProblem[];
  /** Cluster mode only: this node's role, the leader, every replica's sync lag. */
  readonly cluster?: StatusCluster;
  /**
   * dns-persist-01 only: the TXT records the operator sets once, per CA
   * (staging, production), for the names seen so far.
   */
  readonly dnsPersist?: readonly PersistRecordStatus[];
}

export interface StatusCluster {
  readonly node: string;
  readonly role: 'leader' | 'follower';
  /** The elected node as this node knows it; null when there is none. */
  readonly leader: string | null;
  /** Why this node acts or not (Leader, NotElected, LeaseExpiring, ...). */
  readonly reason: string;
  readonly replicas: readonly {
    readonly name: string;
    readonly inSync: boolean;
    /** 0 when in sync; else the age of the newest certificate it has not materialized. */
    readonly lagSeconds: number;
    readonly syncedAt: string | null;
    /** Publication to this replica's live/, for the last certificate it applied. */
    readonly lastApplyLagMs: number | null;
    readonly seenAt: string;
  }[];
}

export interface LastPass {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly ok: boolean;
  readonly discoveryError?: string;
  /**
   * Process CPU (user + system) spent while the pass ran, in seconds: what
   * an idle pass over many valid certificates costs the host.
   */
  readonly cpuSeconds?: number;
  /** Loads that reached the store during the pass (each record at most once per pass). */
  readonly storeReads?: number;
}

/** How a certificate looks to an operator: one word, shared by JSON and page. */
export type CertState = 'ok' | 'warning' | 'error';

export interface StatusCertificate {
  readonly name: string;
  readonly domains: readonly string[];
  /** The ACME profile ordered under (ACME_PROFILE or a label); null: the CA's default. */
  readonly profile: string | null;
  readonly phase: CertStatus['phase'];
  readonly ready: boolean;
  /** See `certState` in http/status.ts. */
  readonly state: CertState;
  readonly notAfter: string | null;
  /** Whole seconds from `generatedAt` to `notAfter`; negative once expired. */
  readonly secondsLeft: number | null;
  readonly renewAt: string | null;
  /** `ari`: drawn from the CA's renewal window; `lifetime`: the lifetime rule. */
  readonly renewSource: 'ari' | 'lifetime' | null;
  /** The CA's explanation of its renewal window, when it gave one. */
  readonly explanationUrl: string | null;
  readonly reason: CertStatus['reason'];
  readonly attempts: number;
  readonly lastError: {
    readonly code: string;
    readonly message: string;
    readonly at: string;
  } | null;
  readonly nextRetry: string | null;
  /** Records of this certificate found corrupt (kept aside) in the last pass that found any. */
  readonly localState: readonly {
    readonly code: string;
    readonly record: string;
    readonly keptAs: string | null;
    readonly message: string;
    readonly at: string;
  }[];
  /** How that was healed: `adopted` from live/ (no order) or `reissued`. */
  readonly recovered: 'adopted' | 'reissued' | null;
  /** The last deployment check (DEPLOY_CHECK_ENDPOINTS), or null when off. */
  readonly deployment: {
    readonly checkedAt: string;
    readonly stale: boolean;
    readonly endpoints: readonly { endpoint: string; state: string; servedSerial: string | null }[];
  } | null;
}

/** Below this much validity left a certificate is flagged, renewal window or not. */
export const EXPIRING_SOON_SECONDS = 7 * 24 * 60 * 60;

/** Error messages longer than this are cut: they end up in a page and a JSON body. */
export const MAX_MESSAGE_LENGTH = 1000;
