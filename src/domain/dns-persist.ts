/**
 * dns-persist-01 (draft-ietf-acme-dns-persist-00/-01, section 3; the CA/B
 * Forum's BR 3.2.2.4.22): one TXT record, set once by the operator, that
 * names the CA and the ACME account allowed to issue for a name. Pure.
 *
 * The record this module writes and reads:
 *
 *   _validation-persist.<name>.  IN TXT  "<issuer-domain-name>; accounturi=<account URL>[; policy=wildcard]"
 *
 * - <name> is the identifier without `*.` (a wildcard's authorization is for
 *   its base name, RFC 8555 section 7.1.3).
 * - The value is an RFC 8659 (CAA) issue-value: the issuer domain name, then
 *   `tag=value` parameters separated by `;`, tags case-insensitive, values
 *   printable ASCII without spaces or `;`, no tag twice.
 * - <issuer-domain-name> is one of the challenge object's
 *   `issuer-domain-names` (draft-02 spells it `issuerDomainNames`); CAs take
 *   them from their CAA identities, the directory's `meta.caaIdentities`.
 * - `accounturi` is our account URL, exactly as the CA gave it (RFC 8657).
 * - `policy=wildcard` lets the record validate `*.<name>` too (draft
 *   section 5); any other policy value counts as absent.
 * - `persistUntil=<unix seconds>` is optional; the CA refuses the record
 *   after that time. We never write it (the record is meant to stay).
 *
 * Checked against Pebble 2.10.3's `va.validateDNSPersist01` and
 * `parseDNSPersistIssueValues` (the release Pebble added dns-persist-01 in;
 * 2.9.0 has no such challenge): issuer names compared after trimming
 * spaces and tabs, accounturi byte for byte, policy case-insensitively.
 */

import type { AcmePhase } from './types.js';

export const DNS_PERSIST_LABEL = '_validation-persist';

/** draft section 3.1: a client rejects a challenge with no or more than 10 issuer names. */
const MAX_ISSUER_NAMES = 10;
const MAX_DOMAIN_OCTETS = 253;
/** RFC 8659 section 4.2 `value`: printable ASCII except `;` (0x21-0x3A, 0x3C-0x7E). */
const ISSUE_VALUE = /^[\x21-\x3a\x3c-\x7e]*$/;
const DOMAIN_NAME =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** One TXT record an operator sets once for dns-persist-01. */
export interface PersistRecord {
  /** `_validation-persist.<name>` without a trailing dot. */
  readonly name: string;
  /** The TXT value, one string of at most 255 octets in practice. */
  readonly value: string;
}

/** A record one CA's account needs, as /status and check-config show it. */
export interface PersistRecordStatus extends PersistRecord {
  readonly phase: AcmePhase;
  /** The certificate names the record validates (sorted). */
  readonly domains: readonly string[];
}

export interface PersistRecordInput {
  /** A certificate name: `shop.example.com` or `*.example.com`. */
  readonly domain: string;
  readonly issuerDomainName: string;
  readonly accountUri: string;
  /** Add `policy=wildcard` (needed when `*.<name>` is validated by this record). */
  readonly wildcard?: boolean;
}

/** The base name a certificate name is validated at: `*.example.com` -> `example.com`. */
export function persistBaseName(domain: string): string {
  const lower = domain.trim().toLowerCase().replace(/\.$/, '');
  return lower.startsWith('*.') ? lower.slice(2) : lower;
}

/** `_validation-persist.<name>` for a certificate name (draft section 3). */
export function persistRecordName(domain: string): string {
  return `${DNS_PERSIST_LABEL}.${persistBaseName(domain)}`;
}

/** The record for one name, account and CA. Throws on a value the CA could not parse. */
export function formatPersistRecord(input: PersistRecordInput): PersistRecord {
  const issuer = input.issuerDomainName.trim().toLowerCase().replace(/\.$/, '');
  if (!DOMAIN_NAME.test(issuer)) {
    throw new Error(
      `issuer domain name ${JSON.stringify(input.issuerDomainName)} is not a domain name`,
    );
  }
  if (input.accountUri === '' || !ISSUE_VALUE.test(input.accountUri)) {
    throw new Error(
      `account URL ${JSON.stringify(input.accountUri)} cannot be written in a CAA issue-value (RFC 8659 section 4.2)`,
    );
  }
  const params = [`accounturi=${input.accountUri}`, ...(input.wildcard ? ['policy=wildcard'] : [])];
  return { name: persistRecordName(input.domain), value: [issuer, ...params].join('; ') };
}

/** A parsed TXT value; `policy` is `wildcard` or absent (draft section 5). */
export interface ParsedPersistValue {
  readonly issuerDomainName: string;
  readonly accountUri: string;
  readonly policy?: 'wildcard';
  /** Unix seconds. */
  readonly persistUntil?: number;
}

export type ParseResult =
  | { readonly ok: true; readonly value: ParsedPersistValue }
  | { readonly ok: false; readonly problem: string };

const trimWsp = (s: string): string => s.replace(/^[ \t]+|[ \t]+$/g, '');

/**
 * Reads a TXT value the way the CA does (RFC 8659 issue-value; unknown
 * tags ignored, a repeated tag, an empty parameter or a bad value refused).
 */
export function parsePersistValue(txt: string): ParseResult {
  const [head = '', ...rest] = txt.split(';');
  const issuer = trimWsp(head).toLowerCase().replace(/\.$/, '');
  if (issuer === '') return { ok: false, problem: 'no issuer domain name before the first ";"' };
  const seen = new Set<string>();
  let accountUri: string | undefined;
  let policy: 'wildcard' | undefined;
  let persistUntil: number | undefined;
  for (const raw of rest) {
    const param = trimWsp(raw);
    if (param === '') return { ok: false, problem: 'an empty parameter (";;" or a trailing ";")' };
    const eq = param.indexOf('=');
    if (eq < 0)
      return { ok: false, problem: `parameter ${JSON.stringify(param)} is not tag=value` };
    const tag = trimWsp(param.slice(0, eq)).toLowerCase();
    const value = trimWsp(param.slice(eq + 1));
    if (tag === '') return { ok: false, problem: `parameter ${JSON.stringify(param)} has no tag` };
    if (seen.has(tag)) return { ok: false, problem: `tag ${tag} appears twice` };
    seen.add(tag);
    if (!ISSUE_VALUE.test(value)) {
      return { ok: false, problem: `the value of ${tag} has spaces or characters outside ASCII` };
    }
    if (tag === 'accounturi') {
      if (value === '') return { ok: false, problem: 'accounturi is empty' };
      accountUri = value;
    } else if (tag === 'policy') {
      policy = value.toLowerCase() === 'wildcard' ? 'wildcard' : undefined;
    } else if (tag === 'persistuntil') {
      if (!/^\d+$/.test(value))
        return { ok: false, problem: `persistUntil ${value} is not a number` };
      persistUntil = Number(value);
    }
  }
  if (accountUri === undefined) return { ok: false, problem: 'no accounturi parameter' };
  return {
    ok: true,
    value: {
      issuerDomainName: issuer,
      accountUri,
      ...(policy && { policy }),
      ...(persistUntil !== undefined && { persistUntil }),
    },
  };
}

/**
 * Whether one of `txts` (the TXT values at the record name) lets this
 * account of this CA validate the name, at `nowS` (unix seconds), the way
 * the CA decides (draft section 4). Pure; the reason names the closest miss.
 */
export function persistRecordVerdict(
  txts: readonly string[],
  want: {
    issuerDomainNames: readonly string[];
    accountUri: string;
    wildcard: boolean;
    nowS: number;
  },
): { ok: true } | { ok: false; reason: string } {
  if (txts.length === 0) return { ok: false, reason: 'no TXT record there' };
  const issuers = want.issuerDomainNames.map((n) => n.toLowerCase().replace(/\.$/, ''));
  const misses: string[] = [];
  for (const txt of txts) {
    const parsed = parsePersistValue(txt);
    if (!parsed.ok) {
      misses.push(`${JSON.stringify(txt)}: ${parsed.problem}`);
      continue;
    }
    const v = parsed.value;
    if (!issuers.includes(v.issuerDomainName)) {
      misses.push(
        `${JSON.stringify(txt)}: issuer ${v.issuerDomainName} is not this CA (${issuers.join(', ')})`,
      );
    } else if (v.accountUri !== want.accountUri) {
      misses.push(`${JSON.stringify(txt)}: accounturi is not our account ${want.accountUri}`);
    } else if (want.wildcard && v.policy !== 'wildcard') {
      misses.push(`${JSON.stringify(txt)}: a wildcard needs policy=wildcard`);
    } else if (v.persistUntil !== undefined && want.nowS > v.persistUntil) {
      misses.push(`${JSON.stringify(txt)}: persistUntil ${v.persistUntil} has passed`);
    } else {
      return { ok: true };
    }
  }
  return { ok: false, reason: misses.join('; ') };
}

/**
 * The issuer domain names of a dns-persist-01 challenge object (field
 * `issuer-domain-names`, or `issuerDomainNames` from draft-02 on), checked
 * as the draft asks of a client (section 3.1: 1 to 10 names of at most 253
 * octets); undefined when the challenge is malformed.
 */
export function issuerDomainNamesOf(
  challenge: Readonly<Record<string, unknown>>,
): string[] | undefined {
  const raw = challenge['issuer-domain-names'] ?? challenge['issuerDomainNames'];
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_ISSUER_NAMES) return undefined;
  const names: string[] = [];
  for (const n of raw) {
    if (typeof n !== 'string' || n.length > MAX_DOMAIN_OCTETS) return undefined;
    const lower = n.trim().toLowerCase().replace(/\.$/, '');
    if (!DOMAIN_NAME.test(lower)) return undefined;
    names.push(lower);
  }
  return names;
}

/**
 * The records a set of certificates needs at one CA: one per base name,
 * with `policy=wildcard` when any certificate asks for `*.<name>`. Sorted by name.
 */
export function persistRecordsFor(
  domains: readonly string[],
  ca: { issuerDomainName: string; accountUri: string },
): PersistRecord[] {
  const wildcard = new Map<string, boolean>();
  for (const d of domains) {
    const base = persistBaseName(d);
    wildcard.set(base, (wildcard.get(base) ?? false) || d.trim().startsWith('*.'));
  }
  return [...wildcard.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([base, w]) => formatPersistRecord({ domain: base, ...ca, wildcard: w }));
}

/** How a record reads in a zone file or to `nsupdate`: `<name>. TXT "<value>"`. */
export function persistRecordLine(r: PersistRecord): string {
  return `${r.name}. TXT "${r.value}"`;
}
