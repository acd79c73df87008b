/**
 * ACME profiles (draft-ietf-acme-profiles; Let's Encrypt's `classic`,
 * `tlsserver`, `shortlived`): a name the order carries in its `profile`
 * field, chosen from those the CA lists in its directory's `meta.profiles`.
 */
import { SidecarError } from './errors.js';
import { quote } from './hostnames.js';
import type { CertSpec } from './types.js';

/** The environment variable that sets the profile of every order. */
export const PROFILE_SETTING = 'ACME_PROFILE';

/** What a profile name may be: it goes into a JSON payload, a log line and `/status`. */
export const PROFILE_NAME = /^[a-zA-Z0-9._-]{1,64}$/;

export const PROFILE_NAME_EXPECTED =
  'expected a profile name of 1 to 64 letters, digits, dots, dashes or underscores, such as classic, tlsserver or shortlived';

export function isValidProfileName(value: string): boolean {
  return PROFILE_NAME.test(value);
}

/**
 * The spec with the configured profile (`ACME_PROFILE`) when nothing more
 * specific (a label) chose one.
 */
export function withDefaultProfile(spec: CertSpec, profile: string | undefined): CertSpec {
  if (spec.profile !== undefined || profile === undefined) return spec;
  return { ...spec, profile, profileFrom: PROFILE_SETTING };
}

/**
 * The profiles a directory (RFC 8555 §7.1.1) offers, name -> description;
 * undefined when it lists none.
 */
export function offeredProfiles(directory: unknown): Record<string, string> | undefined {
  if (!directory || typeof directory !== 'object') return undefined;
  const meta = (directory as { meta?: unknown }).meta;
  if (!meta || typeof meta !== 'object') return undefined;
  const profiles = (meta as { profiles?: unknown }).profiles;
  if (!profiles || typeof profiles !== 'object' || Array.isArray(profiles)) return undefined;
  const out: Record<string, string> = {};
  for (const [name, description] of Object.entries(profiles)) {
    out[name] = typeof description === 'string' ? description : '';
  }
  return Object.keys(out).length ? out : undefined;
}

/**
 * Why `profile` (chosen by `from`: `ACME_PROFILE` or a label) cannot be
 * asked of the CA at `directoryUrl`, in words that name the setting, the
 * value and what is on offer; undefined when it can.
 */
export function profileProblem(
  profile: string,
  from: string,
  offered: Readonly<Record<string, string>> | undefined,
  directoryUrl: string,
): string | undefined {
  if (!offered) {
    return `${from}=${quote(profile)}, but the CA at ${directoryUrl} offers no profiles (its directory lists no meta.profiles): unset ${from}`;
  }
  if (Object.hasOwn(offered, profile)) return undefined;
  const names = Object.entries(offered)
    .map(([name, description]) => (description ? `${name} (${description})` : name))
    .join(', ');
  return `${from}=${quote(profile)} is not a profile the CA at ${directoryUrl} offers; it offers: ${names}`;
}

/** The coded failure for `profileProblem`. */
export function profileError(message: string): SidecarError {
  return new SidecarError('ACME_PROFILE_INVALID', message);
}
