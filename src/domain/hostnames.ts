/**
 * Hostname and certificate-name validation, and the DOMAINS list syntax.
 * Pure: no I/O, no clock.
 *
 * ## DOMAINS syntax
 *
 * - Entries are separated by commas and/or line breaks. Whitespace around an
 *   entry, and around `=` and `+` inside it, is ignored.
 * - Each entry is one certificate:
 *   - `example.com`: one hostname; the certificate is named after it.
 *   - `www.example.com+example.com`: several hostnames joined with `+` make
 *     one multi-SAN certificate, named after the first hostname (which is
 *     also its CN).
 *   - `shop=shop.example.com+cdn.example.com`: a certificate name, then `=`,
 *     then its hostnames. Names match `^[a-z0-9][a-z0-9._-]{0,199}$` and
 *     contain no `..` (they become directory names).
 * - Hostnames are lowercased, one trailing dot is dropped, and international
 *   names are converted to punycode (`bücher.example` becomes
 *   `xn--bcher-kva.example`). Single-label names (`localhost`) are
 *   refused: public CAs do not issue for them.
 * - An IPv4 or IPv6 address is an `ip` identifier (RFC 8738), written in
 *   one canonical form (domain/ip-address.ts); an entry that starts with one
 *   is named after it, with `:` as `-` (`2001:db8::1` -> `2001-db8--1`).
 * - `*.example.com` is a wildcard (validated by DNS-01 only). An entry
 *   without a name is named after its first hostname with `_` for `*`
 *   (`*.example.com+example.com` is `_.example.com`);
 *   `name=*.example.com+example.com` names it.
 * - A hostname listed twice in one certificate is kept once; order is kept.
 * - An entry with any invalid hostname is reported and skipped as a whole
 *   (a certificate silently missing a requested name would be surprising);
 *   the other entries still go ahead.
 * - Two entries with the same certificate name (including the same hostname
 *   listed twice on its own, `a.com,a.com`): the first wins, the later ones
 *   are reported as `duplicate-name`.
 * - An empty item between two commas (`a.com,,b.com`) is reported as `empty`
 *   (often a template variable that expanded to nothing). Empty items next
 *   to a line break or at either end (a trailing comma, blank lines) are
 *   ignored, so one-entry-per-line lists may end lines with commas.
 */
import { isIP } from 'node:net';
import { domainToASCII, domainToUnicode } from 'node:url';

import { ipCertName, isIpAddress, isIpv6CertName, parseIpLiteral } from './ip-address.js';
import type { CertSpec } from './types.js';

/**
 * An untrusted value inside a message: JSON-quoted (control characters
 * escaped, so it cannot forge a log line) and cut to a readable length.
 */
export function quote(value: string): string {
  // Whole for any hostname (253 characters at most); cut only for absurd input.
  const max = 300;
  const q =
    value.length <= max
      ? JSON.stringify(value)
      : `${JSON.stringify(value.slice(0, max))}... (${value.length} characters)`;
  // JSON leaves bidi overrides and zero-width characters alone: a log line
  // could then display reversed or hide text. Show them as escapes.
  return q.replace(
    /[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export type HostnameResult =
  | { readonly ok: true; readonly hostname: string }
  | { readonly ok: false; readonly code: HostnameProblemCode; readonly message: string };

/** Stable codes for why a hostname or a DOMAINS entry was refused. */
export type HostnameProblemCode =
  /** Nothing there (an empty entry). */
  | 'empty'
  /** Whitespace, a control character, or a label with characters other than a-z, 0-9 and `-`. */
  | 'bad-character'
  /** A `*` anywhere but as the whole first label (`*.example.com` is fine; `a*.example.com`, `*.*.example.com` are not). */
  | 'wildcard'
  /** An IP address in a form we refuse (zone id, brackets, leading zeros, embedded IPv4, `::`, `127.1`). */
  | 'ip-literal'
  /** Path or URL syntax (a slash, a backslash, `:`, `@`, `%`, `?`, `#`, brackets or `..`): give the bare hostname. */
  | 'path-syntax'
  /** Longer than 253 characters. */
  | 'too-long'
  /** An empty label (two dots in a row). */
  | 'label-empty'
  /** A label longer than 63 characters. */
  | 'label-too-long'
  /** A label that starts or ends with `-`. */
  | 'label-hyphen'
  /** A label with `--` in positions 3-4 that is not `xn--` (reserved for IDNA). */
  | 'reserved-label'
  /** A single label: public CAs only issue for names with a registered domain. */
  | 'single-label'
  /** An all-numeric top-level label. */
  | 'numeric-tld'
  /** Not a valid internationalized domain name. */
  | 'idn-invalid';

export type DomainListProblemCode =
  | HostnameProblemCode
  /** A certificate name (`name=`) that is invalid, or a hostname too long to name one. */
  | 'bad-name'
  /** A certificate name another entry already requested (and nobody holds yet); this entry is ignored. */
  | 'duplicate-name'
  /** An `io.acme-sidecar.profile` label that is not a profile name: that object's certificates are skipped. */
  | 'bad-profile'
  /** A hostname outside `ALLOWED_DOMAINS`: that certificate is refused. */
  | 'not-allowed'
  /** A certificate name or hostname another source held first (kept across restarts): refused while that source asks for it. */
  | 'claimed';

export interface DomainListProblem {
  readonly source: string;
  /** The offending entry as written (trimmed). */
  readonly value: string;
  readonly code: DomainListProblemCode;
  readonly message: string;
}

export interface DomainList {
  readonly specs: CertSpec[];
  readonly problems: DomainListProblem[];
}

/** RFC 1035 section 2.3.4: 255 octets on the wire, i.e. 253 characters written out. */
const MAX_HOSTNAME_LENGTH = 253;
/** RFC 1035 section 2.3.4. */
const MAX_LABEL_LENGTH = 63;

/** `_.` first only for a wildcard's own name (`*.example.com` is `_.example.com`, as lego names it). */
const CERT_NAME = /^(?:_\.)?[a-z0-9][a-z0-9._-]{0,199}$/;

/** Whitespace, C0/C1 controls (NUL included). */
const WHITESPACE_OR_CONTROL = /[\s\p{Cc}]/u;
/**
 * Characters that make the input a path, a URL or a host:port rather than a
 * hostname. Checked on the raw input, before `domainToASCII`, because the
 * WHATWG host parser would otherwise percent-decode (`ex%41mple.com` ->
 * `example.com`) or cut at `/`, and we would validate a different name than
 * the user wrote.
 */
const PATH_OR_URL_SYNTAX = /[/\\:@%?#[\]]|\.\./;
/** A last label the WHATWG host parser reads as a number (decimal or hex). */
const NUMERIC_LABEL = /^(?:[0-9]+|0x[0-9a-f]*)$/i;
const LDH_LABEL = /^[a-z0-9-]+$/;

function fail(input: string, code: HostnameProblemCode, why: string): HostnameResult {
  return { ok: false, code, message: `hostname ${quote(input)} ${why}` };
}

/**
 * Turns user input into the lowercase, punycode hostname an ACME order needs,
 * or into an IP address in its one written form (RFC 8738, see
 * domain/ip-address.ts), or says precisely why it cannot be one. Only names
 * a public CA can validate with HTTP-01 pass (RFC 8555 section 8.3 validates
 * a DNS name by fetching from it, RFC 8738 section 7 an address likewise).
 */
export function normalizeHostname(input: string): HostnameResult {
  const trimmed = input.trim();
  if (trimmed === '') return fail(input, 'empty', 'is empty');
  if (WHITESPACE_OR_CONTROL.test(trimmed)) {
    return fail(input, 'bad-character', 'contains whitespace or a control character');
  }
  if (trimmed.includes('*')) return normalizeWildcard(input, trimmed);
  // RFC 8738: an IP address is an identifier of its own (domain/ip-address.ts).
  const ip = parseIpLiteral(trimmed);
  if (ip.kind === 'ip') return { ok: true, hostname: ip.address };
  if (ip.kind === 'invalid') return fail(input, 'ip-literal', ip.why);
  const undotted = trimmed.endsWith('.') ? trimmed.slice(0, -1) : trimmed;
  if (PATH_OR_URL_SYNTAX.test(trimmed)) {
    return fail(
      input,
      'path-syntax',
      'contains path or URL syntax (one of / \\ : @ % ? # [ ] or ".."); give the bare hostname',
    );
  }
  if (undotted === '') return fail(input, 'empty', 'is empty');

  const lower = undotted.toLowerCase();
  // UTS #46 processing (the WHATWG URL host parser): maps case and
  // compatibility forms, converts to punycode, and returns '' on failure.
  const ascii = domainToASCII(lower);
  if (ascii !== '' && isIP(ascii) !== 0) {
    return fail(
      input,
      'ip-literal',
      `is read as the IP address ${ascii} by URL parsers; write the address as ${ascii}`,
    );
  }
  const rawTld = lower.slice(lower.lastIndexOf('.') + 1);
  if (lower.includes('.') && NUMERIC_LABEL.test(rawTld)) {
    return fail(input, 'numeric-tld', `has an all-numeric top-level label ${quote(rawTld)}`);
  }
  if (ascii === '') {
    return fail(input, 'idn-invalid', 'is not a valid internationalized domain name');
  }
  if (ascii.length > MAX_HOSTNAME_LENGTH) {
    return fail(
      input,
      'too-long',
      `is ${ascii.length} characters long; the limit is ${MAX_HOSTNAME_LENGTH}`,
    );
  }
  const labels = ascii.split('.');
  for (const label of labels) {
    if (label === '') return fail(input, 'label-empty', 'has an empty label');
    // An A-label must be valid punycode of a non-ASCII U-label, and round-trip
    // to itself (RFC 5891 section 5.4). Checked here, not left to
    // domainToASCII: Node 20's ICU refused `xn--zz`, Node 24's URL parser
    // (ada) passes an undecodable A-label through unchanged.
    if (label.startsWith('xn--')) {
      const unicode = domainToUnicode(label);
      if (unicode === '' || unicode === label || domainToASCII(unicode) !== label) {
        return fail(
          input,
          'idn-invalid',
          `has a label ${quote(label)} that is not valid punycode of an internationalized name`,
        );
      }
    }
    if (label.length > MAX_LABEL_LENGTH) {
      return fail(
        input,
        'label-too-long',
        `has a label of ${label.length} characters; the limit is ${MAX_LABEL_LENGTH}`,
      );
    }
    if (!LDH_LABEL.test(label)) {
      return fail(
        input,
        'bad-character',
        `has a label ${quote(label)} with characters other than a-z, 0-9 and "-"`,
      );
    }
    if (label.startsWith('-') || label.endsWith('-')) {
      return fail(
        input,
        'label-hyphen',
        `has a label ${quote(label)} that starts or ends with "-"`,
      );
    }
    // RFC 5891 section 4.2.3.1: "--" in positions 3-4 is reserved for IDNA;
    // only "xn--" labels (already checked by domainToASCII) may use it.
    if (label.slice(2, 4) === '--' && !label.startsWith('xn--')) {
      return fail(
        input,
        'reserved-label',
        `has a label ${quote(label)} with "--" in positions 3-4, which is reserved for IDNA`,
      );
    }
  }
  if (labels.length < 2) {
    return fail(
      input,
      'single-label',
      'has a single label; public CAs only issue for names with a registered domain',
    );
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) {
    return fail(input, 'numeric-tld', 'has an all-numeric top-level label');
  }
  return { ok: true, hostname: ascii };
}

/**
 * RFC 8555 section 7.1.3: a wildcard identifier is `*.` followed by a
 * hostname; the `*` is the whole first label, and appears nowhere else
 * (CAs refuse `*.*.example.com` and `a*.example.com`). The rest follows
 * every hostname rule. Validated by DNS-01 only (section 8.4).
 */
function normalizeWildcard(input: string, trimmed: string): HostnameResult {
  const rest = trimmed.slice(2);
  if (!trimmed.startsWith('*.') || rest.includes('*')) {
    return fail(
      input,
      'wildcard',
      'has a "*" that is not the whole first label; a wildcard is written *.example.com',
    );
  }
  const base = normalizeHostname(rest);
  if (!base.ok) return { ...base, message: `${base.message} (in the wildcard ${quote(input)})` };
  return { ok: true, hostname: `*.${base.hostname}` };
}

/** True for `*.example.com`: validated by DNS-01 only (RFC 8555 section 8.4). */
export function isWildcard(hostname: string): boolean {
  return hostname.startsWith('*.');
}

/**
 * True if `name` may name a certificate. Names become directory names under
 * the state directory, so the pattern is strict and `..` is refused.
 */
export function isValidCertName(name: string): boolean {
  return (CERT_NAME.test(name) && !name.includes('..')) || isIpv6CertName(name);
}

/**
 * The name of a certificate whose entry names none: its first hostname or
 * address, with a wildcard's `*` written `_` (`live/_.example.com/`, as lego
 * does) and an IPv6 address's `:` written `-`, since neither has a place in
 * a directory name.
 */
export function certNameFor(hostname: string): string {
  if (isWildcard(hostname)) return `_${hostname.slice(1)}`;
  return isIpAddress(hostname) ? ipCertName(hostname) : hostname;
}

const CERT_NAME_RULE =
  'use a-z, 0-9, ".", "_" and "-", starting with a letter or digit, at most 200 characters, no ".."';

interface Item {
  readonly text: string;
  /** Both neighbouring separators are commas. */
  readonly betweenCommas: boolean;
}

/** Splits on commas and line breaks, remembering which separators surround each item. */
function splitItems(raw: string): Item[] {
  const items: Item[] = [];
  const separator = /,|\r?\n|\r/g;
  let start = 0;
  let before = '';
  for (let m = separator.exec(raw); ; m = separator.exec(raw)) {
    const end = m === null ? raw.length : m.index;
    const after = m === null ? '' : m[0];
    items.push({
      text: raw.slice(start, end).trim(),
      betweenCommas: before === ',' && after === ',',
    });
    if (m === null) return items;
    start = end + after.length;
    before = after;
  }
}

/**
 * Parses a DOMAINS-style list (syntax at the top of this file) into one
 * CertSpec per valid entry, plus one problem per refused entry. Never throws.
 */
export function parseDomainList(raw: string, source: string): DomainList {
  const specs: CertSpec[] = [];
  const problems: DomainListProblem[] = [];
  const seen = new Map<string, string>();
  const report = (value: string, code: DomainListProblemCode, message: string): void => {
    problems.push({ source, value, code, message });
  };

  for (const item of splitItems(raw)) {
    const entry = item.text;
    if (entry === '') {
      if (item.betweenCommas) report(entry, 'empty', `${source}: empty entry between two commas`);
      continue;
    }
    const where = `${source}: entry ${quote(entry)}`;
    const eq = entry.indexOf('=');
    const explicitName = eq === -1 ? undefined : entry.slice(0, eq).trim();
    const hostPart = eq === -1 ? entry : entry.slice(eq + 1);
    if (explicitName !== undefined && !isValidCertName(explicitName)) {
      report(
        entry,
        'bad-name',
        `${where}: certificate name ${quote(explicitName)} is invalid (${CERT_NAME_RULE})`,
      );
      continue;
    }

    const domains: string[] = [];
    const failures: { code: HostnameProblemCode; message: string }[] = [];
    let spaceInside = false;
    for (const host of hostPart.split('+')) {
      const result = normalizeHostname(host);
      if (!result.ok) {
        failures.push(result);
        spaceInside ||= /\s/.test(host.trim());
      } else if (!domains.includes(result.hostname)) domains.push(result.hostname);
    }
    const first = failures[0];
    if (first !== undefined) {
      const hint = spaceInside ? ' (separate entries with commas)' : '';
      report(
        entry,
        first.code,
        `${where}: ${failures.map((f) => f.message).join('; ')}${hint}; the certificate is skipped`,
      );
      continue;
    }

    const name = explicitName ?? certNameFor(domains[0] ?? '');
    if (!isValidCertName(name)) {
      // Only reachable for hostnames over 200 characters.
      report(
        entry,
        'bad-name',
        `${where}: the hostname is too long to name the certificate; give a name with "name=..."`,
      );
      continue;
    }
    const earlier = seen.get(name);
    if (earlier !== undefined) {
      report(
        entry,
        'duplicate-name',
        `${where}: certificate ${quote(name)} is already requested by ${quote(earlier)}; this entry is ignored`,
      );
      continue;
    }
    seen.set(name, entry);
    specs.push({ name, domains, source });
  }
  return { specs, problems };
}
