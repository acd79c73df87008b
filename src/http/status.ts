import type { AcmePhase } from '../domain/types.js';
import type { DiscoveryProblem } from '../platform/platform.js';
import type { CertStatus } from '../reconcile/reconciler.js';
import { redact } from '../util/redact.js';

/**
 * The JSON served at `/status`, and the only input of the HTML page.
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
}

/** How a certificate looks to an operator: one word, shared by JSON and page. */
export type CertState = 'ok' | 'warning' | 'error';

export interface StatusCertificate {
  readonly name: string;
  readonly domains: readonly string[];
  readonly phase: CertStatus['phase'];
  readonly ready: boolean;
  /** See {@link certState}. */
  readonly state: CertState;
  readonly notAfter: string | null;
  /** Whole seconds from `generatedAt` to `notAfter`; negative once expired. */
  readonly secondsLeft: number | null;
  readonly renewAt: string | null;
  readonly reason: CertStatus['reason'];
  readonly attempts: number;
  readonly lastError: {
    readonly code: string;
    readonly message: string;
    readonly at: string;
  } | null;
  readonly nextRetry: string | null;
  /** The last deployment check (DEPLOY_CHECK_ENDPOINTS), or null when off. */
  readonly deployment: {
    readonly checkedAt: string;
    readonly stale: boolean;
    readonly endpoints: readonly { endpoint: string; state: string; servedSerial: string | null }[];
  } | null;
}

export interface StatusInput {
  readonly certificates: readonly CertStatus[];
  readonly problems: readonly DiscoveryProblem[];
  readonly target: AcmePhase;
  readonly platform: string;
  readonly lastPass?: LastPass;
  readonly cluster?: StatusCluster;
}

/** Below this much validity left a certificate is flagged, renewal window or not. */
export const EXPIRING_SOON_SECONDS = 7 * 24 * 60 * 60;

/** Error messages longer than this are cut: they end up in a page and a JSON body. */
export const MAX_MESSAGE_LENGTH = 1000;

/**
 * Classifies a certificate for the operator:
 * - `error`: not ready (nginx does not serve a valid certificate from the
 *   target CA), the last attempt failed, or it has expired;
 * - `warning`: serving fine, but less than 7 days left or past its renewal
 *   time (renewal should have happened and has not);
 * - `ok`: otherwise.
 */
export function certState(
  c: Pick<StatusCertificate, 'ready' | 'lastError' | 'notAfter' | 'renewAt'>,
  now: Date,
): CertState {
  const left = secondsUntil(c.notAfter, now);
  if (!c.ready || c.lastError || (left !== null && left <= 0)) return 'error';
  if (left !== null && left < EXPIRING_SOON_SECONDS) return 'warning';
  const renewIn = secondsUntil(c.renewAt, now);
  if (renewIn !== null && renewIn <= 0) return 'warning';
  return 'ok';
}

/** Pure: the `/status` document for these facts at `now`. */
export function buildStatusSnapshot(input: StatusInput, now: Date): StatusSnapshot {
  const certificates = input.certificates
    .map((c) => certificate(c, now))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    generatedAt: now.toISOString(),
    target: input.target,
    platform: input.platform,
    lastPass: input.lastPass
      ? {
          startedAt: input.lastPass.startedAt,
          finishedAt: input.lastPass.finishedAt,
          ok: input.lastPass.ok,
          ...(input.lastPass.discoveryError !== undefined
            ? { discoveryError: cleanMessage(input.lastPass.discoveryError) }
            : {}),
        }
      : null,
    certificates,
    problems: input.problems.map((p) => ({
      source: p.source,
      value: p.value,
      code: p.code,
      message: cleanMessage(p.message),
    })),
    ...(input.cluster && { cluster: clusterView(input.cluster) }),
  };
}

function clusterView(c: StatusCluster): StatusCluster {
  return {
    node: c.node,
    role: c.role,
    leader: c.leader,
    reason: c.reason,
    replicas: c.replicas.map((r) => ({
      name: r.name,
      inSync: r.inSync,
      lagSeconds: r.lagSeconds,
      syncedAt: r.syncedAt,
      lastApplyLagMs: r.lastApplyLagMs,
      seenAt: r.seenAt,
    })),
  };
}

function certificate(c: CertStatus, now: Date): StatusCertificate {
  const base = {
    ready: c.ready,
    notAfter: c.notAfter ?? null,
    renewAt: c.renewAt ?? null,
    lastError: c.lastError
      ? { code: c.lastError.code, message: cleanMessage(c.lastError.message), at: c.lastError.at }
      : null,
  };
  return {
    name: c.name,
    domains: [...c.domains],
    phase: c.phase,
    ready: base.ready,
    state: certState(base, now),
    notAfter: base.notAfter,
    secondsLeft: secondsUntil(base.notAfter, now),
    renewAt: base.renewAt,
    reason: c.reason,
    attempts: c.attempts,
    lastError: base.lastError,
    nextRetry: c.nextRetry ?? null,
    deployment: c.deployment
      ? {
          checkedAt: c.deployment.checkedAt,
          stale: c.deployment.stale,
          endpoints: c.deployment.endpoints.map((e) => ({
            endpoint: e.endpoint,
            state: e.state,
            servedSerial: e.servedSerial ?? null,
          })),
        }
      : null,
  };
}

function secondsUntil(iso: string | null, now: Date): number | null {
  if (iso === null) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : Math.floor((t - now.getTime()) / 1000);
}

/**
 * Error messages come from outside (CA problem documents, platform APIs).
 * Belt and braces, as in the logger: no PEM private key, and bounded length.
 */
function cleanMessage(m: string): string {
  return redact(m, MAX_MESSAGE_LENGTH);
}
