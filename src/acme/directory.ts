import type acme from 'acme-client';
import { offeredProfiles, profileError, profileProblem } from '../domain/profiles.js';
import type { CertSpec } from '../domain/types.js';

/**
 * The CA's directory (RFC 8555 §7.1.1) as acme-client fetched and cached it
 * (a day): `http` is not in its typings, but `getDirectory()` is what every
 * request of it resolves URLs from.
 */
export function directoryOf(client: acme.Client): Promise<unknown> {
  const http = (client as unknown as { http: { getDirectory(): Promise<unknown> } }).http;
  return http.getDirectory();
}

/**
 * Refuses, before any order is placed, a profile the CA does not list in
 * `meta.profiles` (or any profile when it lists none): ACME_PROFILE_INVALID
 * naming the setting, the value and the profiles on offer.
 */
export async function checkProfile(
  client: acme.Client,
  spec: CertSpec,
  directoryUrl: string,
): Promise<void> {
  if (spec.profile === undefined) return;
  const offered = offeredProfiles(await directoryOf(client));
  const problem = profileProblem(
    spec.profile,
    spec.profileFrom ?? 'ACME_PROFILE',
    offered,
    directoryUrl,
  );
  if (problem) throw profileError(problem);
}
