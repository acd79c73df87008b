import type { PersistRecordStatus } from '../domain/dns-persist.js';
import {
  EXPIRING_SOON_SECONDS,
  type CertState,
  type CertStatus,
  type DiscoveryProblem,
  type LastPass,
  type StatusCertificate,
  type StatusCluster,
  type StatusSnapshot,
} from '../domain/status.js';
import type { AcmePhase } from '../domain/types.js';
import { secondsUntil } from '../util/durations.js';
import { cleanMessage } from '../util/redact.js';

/** The facts `/status` is built from; the document's types are in domain/status.ts. */
export interface StatusInput {
  readonly certificates: readonly CertStatus[];
  readonly problems: readonly DiscoveryProblem[];
  readonly target: AcmePhase;
  readonly platform: string;
  readonly lastPass?: LastPass;
  readonly cluster?: StatusCluster;
  readonly dnsPersist?: readonly PersistRecordStatus[];
}

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
    ...(input.dnsPersist?.length && { dnsPersist: input.dnsPersist }),
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
    profile: c.profile ?? null,
    phase: c.phase,
    ready: base.ready,
    state: certState(base, now),
    notAfter: base.notAfter,
    secondsLeft: secondsUntil(base.notAfter, now),
    renewAt: base.renewAt,
    renewSource: c.renewAt ? (c.renewSource ?? 'lifetime') : null,
    explanationUrl: c.explanationUrl ?? null,
    reason: c.reason,
    attempts: c.attempts,
    lastError: base.lastError,
    nextRetry: c.nextRetry ?? null,
    localState: (c.localState ?? []).map((p) => ({
      code: p.code,
      record: p.record,
      keptAs: p.keptAs ?? null,
      message: cleanMessage(p.message),
      at: p.at,
    })),
    recovered: c.recovered ?? null,
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
