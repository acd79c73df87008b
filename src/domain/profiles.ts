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

/** The profile Let's Encrypt issues IP-address certificates under (the only one, in 2026). */
export const IP_PROFILE_HINT = 'shortlived';

/**
 * A newOrder refusal (RFC 8555 section 6.7) that is about this order's IP
 * addresses (RFC 8738) rather than the account or a hostname: Boulder says
 * `rejectedIdentifier` "Profile "classic" does not permit ip type
 * identifiers", a CA without RFC 8738 `unsupportedIdentifier`. Turned into
 * ACME_IP_REFUSED naming the setting to change and the profile to
 * set; undefined for any other refusal (classified as usual).
 */
export function ipProfileRefusal(
  problem: { readonly type: string; readonly detail: string } | undefined,
  spec: CertSpec,
  addresses: readonly string[],
  offered: Readonly<Record<string, string>> | undefined,
  directoryUrl: string,
): SidecarError | undefined {
  if (!problem || addresses.length === 0) return undefined;
  const type = problem.type.replace(/^urn:ietf:params:acme:error:/, '');
  const aboutIp =
    type === 'unsupportedIdentifier' ||
    (type === 'rejectedIdentifier' &&
      (/\bip\b/i.test(problem.detail) || addresses.some((a) => problem.detail.includes(a))));
  if (!aboutIp) return undefined;
  const from = spec.profileFrom ?? `${PROFILE_SETTING} (or the io.acme-sidecar.profile label)`;
  const under =
    spec.profile !== undefined ? `profile ${quote(spec.profile)}` : 'its default profile';
  const names = offered ? Object.keys(offered) : [];
  const others = names.filter((n) => n !== spec.profile);
  let advice: string;
  if (!offered) {
    advice = `this CA offers no profiles to choose from: it does not issue for IP addresses (${directoryUrl})`;
  } else if (others.includes(IP_PROFILE_HINT)) {
    advice = `set ${from} to ${quote(IP_PROFILE_HINT)}, the profile that issues IP-address certificates at Let's Encrypt (offered: ${names.join(', ')})`;
  } else if (others.length > 0) {
    advice = `set ${from} to a profile of this CA that issues IP-address certificates (offered: ${names.join(', ')})`;
  } else {
    advice = `no other profile is offered (${names.join(', ')}): this CA does not issue for IP addresses`;
  }
  return new SidecarError(
    'ACME_IP_REFUSED',
    `the CA refused the IP address ${addresses.map(quote).join(', ')} under ${under} (${type}: ${problem.detail.replace(/\.$/, '')}); ${advice}`,
  );
}
