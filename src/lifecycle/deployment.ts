import type { DeploymentState } from '../domain/status.js';

/**
 * Is a certificate "renewed but never reloaded"? An endpoint still serving
 * another certificate is only stale once the grace period after the
 * deployment has passed (nginx reloads on its own schedule: the compose
 * watcher polls every 10 s). Unreachable endpoints are not stale: they are
 * reported as unreachable. Without a known deployment time (deployed by an
 * earlier run), a mismatch is stale at once.
 */
export function deploymentStale(
  states: readonly DeploymentState[],
  deployedAt: Date | undefined,
  now: Date,
  graceMs: number,
): boolean {
  if (!states.includes('stale')) return false;
  return deployedAt === undefined || now.getTime() - deployedAt.getTime() >= graceMs;
}
