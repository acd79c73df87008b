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
import { CHALLENGE_TYPES, isChallengeType } from '../domain/challenges.js';
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
 * Applies the object's `io.acme-sidecar.challenge` label. A value that is
 * not a challenge type skips those certificates only, reported.
 */
export function withChallengeLabel(
  labels: Readonly<Record<string, string>>,
  found: Discovery,
  source: string,
): Discovery {
  const raw = labels[CHALLENGE_LABEL];
  if (raw === undefined || raw.trim() === '' || found.specs.length === 0) return found;
  const challenge = raw.trim().toLowerCase();
  const from = `${source}:${CHALLENGE_LABEL}`;
  if (!isChallengeType(challenge)) {
    return {
      specs: [],
      problems: [
        ...found.problems,
        {
          source: from,
          value: raw.length > 300 ? `${raw.slice(0, 300)}...` : raw,
          code: 'bad-challenge',
          message: `${from}: ${quote(raw)} is not a challenge type (expected one of ${CHALLENGE_TYPES.join(', ')}); skipping ${found.specs.map((s) => s.name).join(', ')}`,
        },
      ],
    };
  }
  return { specs: found.specs.map((s) => ({ ...s, challenge })), problems: found.problems };
}

/**
 * Applies the object's `io.acme-sidecar.profile` label to the certificates
 * its labels (or, on Docker, its environment) ask for. Labels are untrusted:
 * a value that is not a profile name skips those certificates only, reported
 * as a discovery problem; an empty value is no label.
 */
export function withProfileLabel(
  labels: Readonly<Record<string, string>>,
  found: Discovery,
  source: string,
): Discovery {
  const raw = labels[PROFILE_LABEL];
  if (raw === undefined || raw.trim() === '' || found.specs.length === 0) return found;
  const profile = raw.trim();
  const from = `${source}:${PROFILE_LABEL}`;
  if (!isValidProfileName(profile)) {
    return {
      specs: [],
      problems: [
        ...found.problems,
        {
          source: from,
          value: raw.length > 300 ? `${raw.slice(0, 300)}...` : raw,
          code: 'bad-profile',
          message: `${from}: ${quote(raw)} is not a profile name (${PROFILE_NAME_EXPECTED}); skipping ${found.specs.map((s) => s.name).join(', ')}`,
        },
      ],
    };
  }
  return {
    specs: found.specs.map((s) => ({ ...s, profile, profileFrom: from })),
    problems: found.problems,
  };
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
