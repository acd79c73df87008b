/**
 * Which ACME challenge validates a certificate's names. Pure.
 */
import { isWildcard } from './hostnames.js';
import type { CertSpec } from './types.js';

export const CHALLENGE_TYPES = ['http-01', 'dns-01', 'dns-persist-01'] as const;
export type ChallengeType = (typeof CHALLENGE_TYPES)[number];

export function isChallengeType(value: string): value is ChallengeType {
  return (CHALLENGE_TYPES as readonly string[]).includes(value);
}

/** Why a certificate uses the challenge it does, for logs and messages. */
export type ChallengeReason = 'Wildcard' | 'Label' | 'Setting';

/**
 * RFC 8555 section 7.1.3: a wildcard name is validated by DNS-01 only, so a
 * certificate with one uses DNS-01 for every name (one order, one kind of
 * proof). Otherwise the certificate's label, else `ACME_CHALLENGE`.
 * dns-persist-01 validates wildcards too (its record with `policy=wildcard`,
 * draft-ietf-acme-dns-persist section 5): a wildcard certificate that asks
 * for it (label, else setting) keeps it.
 */
export function challengeFor(
  spec: Pick<CertSpec, 'domains' | 'challenge'>,
  setting: ChallengeType,
): { readonly type: ChallengeType; readonly reason: ChallengeReason } {
  const chosen: { type: ChallengeType; reason: ChallengeReason } =
    spec.challenge !== undefined
      ? { type: spec.challenge, reason: 'Label' }
      : { type: setting, reason: 'Setting' };
  if (spec.domains.some(isWildcard) && chosen.type !== 'dns-persist-01') {
    return { type: 'dns-01', reason: 'Wildcard' };
  }
  return chosen;
}

/** RFC 8945 section 6 HMAC algorithms, as written on the wire (with the dot). */
export const TSIG_ALGORITHM_NAMES = [
  'hmac-sha1.',
  'hmac-sha224.',
  'hmac-sha256.',
  'hmac-sha384.',
  'hmac-sha512.',
] as const;
export type TsigAlgorithm = (typeof TSIG_ALGORITHM_NAMES)[number];

/**
 * `hmac-sha256` or `hmac-sha256.` (lego writes the dot, BIND's config and
 * nsupdate do not), any case: the wire name with its dot, or undefined.
 */
export function normalizeTsigAlgorithm(input: string): TsigAlgorithm | undefined {
  const lower = input.trim().toLowerCase();
  const dotted = lower.endsWith('.') ? lower : `${lower}.`;
  return (TSIG_ALGORITHM_NAMES as readonly string[]).includes(dotted)
    ? (dotted as TsigAlgorithm)
    : undefined;
}

export const DNS_PROVIDERS = ['rfc2136', 'pdns', 'exec'] as const;
export type DnsProviderName = (typeof DNS_PROVIDERS)[number];
