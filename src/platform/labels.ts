/**
 * Hostnames declared on containers and services, read the same way on every
 * platform that has labels (Rancher service labels, Docker container labels)
 * and, for nginx-proxy users, container environment variables.
 */
import {
  certNameFor,
  isValidCertName,
  normalizeHostname,
  parseDomainList,
  quote,
} from '../domain/hostnames.js';
import { CHALLENGE_TYPES, isChallengeType, type ChallengeType } from '../domain/challenges.js';
import { isValidProfileName, PROFILE_NAME_EXPECTED } from '../domain/profiles.js';
import type { CertSpec } from '../domain/types.js';
import type { Discovery, DiscoveryProblem } from './platform.js';

/** The label the Dent sidecar read: comma-separated hostnames, one certificate each. */
export const DENT_LABEL = 'com.danieldent.rancher-lets-encrypt.hosts';
/** This project's label: the DOMAINS syntax (multi-SAN with `+`, names with `name=`). */
export const DOMAINS_LABEL = 'io.acme-sidecar.domains';
/** The ACME profile of every certificate the same object's labels ask for (overrides ACME_PROFILE). */
export const PROFILE_LABEL = 'io.acme-sidecar.profile';
/** `http-01` or `dns-01` for every certificate the same object's labels ask for (overrides ACME_CHALLENGE). */
export const CHALLENGE_LABEL = 'io.acme-sidecar.challenge';

/**
 * The Dent sidecar's label: comma-separated hostnames, one certificate each,
 * nothing else (no names, no `+`, no line breaks: each item is one
 * hostname, validated like any other).
 */
export function parseDentLabel(value: string, source: string): Discovery {
  const specs: CertSpec[] = [];
  const problems: DiscoveryProblem[] = [];
  const items = value.split(',');
  items.forEach((raw, i) => {
    const report = (code: string, message: string) =>
      problems.push({
        source,
        value: raw.length > 300 ? `${raw.slice(0, 300)}...` : raw,
        code,
        message,
      });
    if (raw.trim() === '') {
      // Trailing commas are harmless; an empty entry between two commas is a typo.
      if (i > 0 && i < items.length - 1)
        report('empty', `${source}: empty entry between two commas`);
      return;
    }
    const h = normalizeHostname(raw);
    if (!h.ok) return report(h.code, `${source}: ${h.message}`);
    const name = certNameFor(h.hostname);
    if (!isValidCertName(name)) {
      return report(
        'bad-name',
        `${source}: hostname ${quote(h.hostname)} is too long to name a certificate; name it with ${DOMAINS_LABEL}: name=${h.hostname}`,
      );
    }
    if (specs.some((s) => s.name === name)) {
      return report(
        'duplicate-name',
        `${source}: ${quote(h.hostname)} is listed twice; the first is kept`,
      );
    }
    specs.push({ name, domains: [h.hostname], source });
  });
  return { specs, problems };
}

/**
 * Certificates asked for by one object's labels: the Dent label and this
 * project's label, each reported under `<source>:<label>`. Other labels are
 * ignored; a bad item is a problem, never an exception.
 */
export function specsFromLabels(
  labels: Readonly<Record<string, string>>,
  source: string,
): Discovery {
  const specs: CertSpec[] = [];
  const problems: DiscoveryProblem[] = [];
  const dent = labels[DENT_LABEL];
  if (dent !== undefined) {
    const parsed = parseDentLabel(dent, `${source}:${DENT_LABEL}`);
    specs.push(...parsed.specs);
    problems.push(...parsed.problems);
  }
  const own = labels[DOMAINS_LABEL];
  if (own !== undefined) {
    const parsed = parseDomainList(own, `${source}:${DOMAINS_LABEL}`);
    specs.push(...parsed.specs);
    problems.push(...parsed.problems);
  }
  return withSpecLabels(labels, { specs, problems }, source);
}

/** The labels that qualify every certificate an object asks for: profile, then challenge. */
export function withSpecLabels(
  labels: Readonly<Record<string, string>>,
  found: Discovery,
  source: string,
): Discovery {
  return withChallengeLabel(labels, withProfileLabel(labels, found, source), source);
}

/**
 * One option label that qualifies every certificate an object asks for.
 * Labels are untrusted: a value that `parse` refuses skips those
 * certificates only, reported as a discovery problem; an empty value is no
 * label.
 */
interface OptionLabel<T> {
  readonly label: string;
  readonly code: string;
  /** The value to apply, or undefined when it is not one. */
  readonly parse: (trimmed: string) => T | undefined;
  /** What a refused value is not, and what was expected. */
  readonly expected: string;
  readonly apply: (spec: CertSpec, value: T, from: string) => CertSpec;
}

function withOptionLabel<T>(
  option: OptionLabel<T>,
  labels: Readonly<Record<string, string>>,
  found: Discovery,
  source: string,
): Discovery {
  const raw = labels[option.label];
  if (raw === undefined || raw.trim() === '' || found.specs.length === 0) return found;
  const from = `${source}:${option.label}`;
  const value = option.parse(raw.trim());
  if (value === undefined) {
    return {
      specs: [],
      problems: [
        ...found.problems,
        {
          source: from,
          value: raw.length > 300 ? `${raw.slice(0, 300)}...` : raw,
          code: option.code,
          message: `${from}: ${quote(raw)} is not ${option.expected}; skipping ${found.specs.map((s) => s.name).join(', ')}`,
        },
      ],
    };
  }
  return { specs: found.specs.map((s) => option.apply(s, value, from)), problems: found.problems };
}

const CHALLENGE_OPTION: OptionLabel<ChallengeType> = {
  label: CHALLENGE_LABEL,
  code: 'bad-challenge',
  parse: (v) => {
    const lower = v.toLowerCase();
    return isChallengeType(lower) ? lower : undefined;
  },
  expected: `a challenge type (expected one of ${CHALLENGE_TYPES.join(', ')})`,
  apply: (s, challenge) => ({ ...s, challenge }),
};

const PROFILE_OPTION: OptionLabel<string> = {
  label: PROFILE_LABEL,
  code: 'bad-profile',
  parse: (v) => (isValidProfileName(v) ? v : undefined),
  expected: `a profile name (${PROFILE_NAME_EXPECTED})`,
  apply: (s, profile, from) => ({ ...s, profile, profileFrom: from }),
};

/** Applies the object's `io.acme-sidecar.challenge` label. */
export function withChallengeLabel(
  labels: Readonly<Record<string, string>>,
  found: Discovery,
  source: string,
): Discovery {
  return withOptionLabel(CHALLENGE_OPTION, labels, found, source);
}

/**
 * Applies the object's `io.acme-sidecar.profile` label to the certificates
 * its labels (or, on Docker, its environment) ask for.
 */
export function withProfileLabel(
  labels: Readonly<Record<string, string>>,
  found: Discovery,
  source: string,
): Discovery {
  return withOptionLabel(PROFILE_OPTION, labels, found, source);
}

/**
 * nginx-proxy / acme-companion convention: an environment variable such as
 * `LETSENCRYPT_HOST=a.example.com,b.example.com` asks for ONE certificate,
 * named after its first hostname, for every hostname listed. Parsed with the
 * DOMAINS rules (an invalid hostname skips the certificate, reported).
 */
export function specsFromHostList(value: string, source: string): Discovery {
  const trimmed = value.trim();
  if (trimmed === '') return { specs: [], problems: [] };
  if (/[+=\n\r]/.test(trimmed)) {
    return {
      specs: [],
      problems: [
        {
          source,
          value: trimmed.length > 300 ? `${trimmed.slice(0, 300)}...` : trimmed,
          code: 'bad-character',
          message: `${source}: expected comma-separated hostnames, got ${quote(trimmed)}; the certificate is skipped`,
        },
      ],
    };
  }
  const hosts = trimmed
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h !== '');
  return parseDomainList(hosts.join('+'), source);
}
