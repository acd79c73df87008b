/**
 * `acme-sidecar once --dry-run`: discover and decide, change nothing.
 */
import type { CertSpec } from '../domain/types.js';
import type { PlatformAction } from '../lifecycle/platform-policy.js';
import type { Action } from '../lifecycle/policy.js';
import type { DiscoveryResult } from '../reconcile/discoverer.js';

export interface PlanLine {
  readonly name: string;
  readonly domains: readonly string[];
  /** Plain words: what the next pass would do and why. */
  readonly would: string;
}

export interface Plan {
  readonly lines: PlanLine[];
  readonly problems: DiscoveryResult['problems'];
  readonly discoveryError?: string;
}

export interface PlanDeps {
  readonly discover: () => Promise<DiscoveryResult>;
  readonly plan: (spec: CertSpec) => Promise<{ action: Action; platform?: PlatformAction }>;
  readonly platformName: string;
}

/**
 * What the next pass would do for one certificate, in plain words. The
 * certificate's own action comes first; only when it has nothing to do does
 * the platform's (push, or a certificate that is not ours) speak.
 */
export function describePlan(
  action: Action,
  platform: PlatformAction | undefined,
  platformName: string,
): string {
  switch (action.kind) {
    case 'placeholder':
      return `write a self-signed placeholder (${action.reason})`;
    case 'issue':
      return `order a certificate from the ${action.phase} CA (${action.reason})`;
    case 'deploy':
      return `serve the stored ${action.phase} certificate (${action.reason})`;
    case 'adopt':
      return `take the ${action.phase} certificate live/ serves back into the store, no order (${action.reason})`;
    case 'none':
      break;
  }
  if (platform?.kind === 'push')
    return `push the certificate to ${platformName} (${platform.reason})`;
  if (platform?.kind === 'conflict') {
    return `leave ${platformName}'s certificate alone: not ours (${platform.reason})`;
  }
  const source = action.renewSource === 'ari' ? ' (CA renewal window)' : '';
  const renews = action.renewAt ? `, renews after ${action.renewAt.toISOString()}${source}` : '';
  return `nothing (${action.reason}${renews})`;
}

export async function plan(deps: PlanDeps): Promise<Plan> {
  const found = await deps.discover();
  const lines: PlanLine[] = [];
  for (const spec of found.specs) {
    const p = await deps.plan(spec);
    lines.push({
      name: spec.name,
      domains: spec.domains,
      would: describePlan(p.action, p.platform, deps.platformName),
    });
  }
  return {
    lines,
    problems: found.problems,
    ...(found.error && { discoveryError: `${found.error.code}: ${found.error.message}` }),
  };
}
