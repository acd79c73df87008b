/**
 * DNS-01 names, values and the propagation decision. Pure: no I/O, no clock
 * (elapsed time is passed in).
 */

/**
 * RFC 8555 section 8.4: the TXT record lives at `_acme-challenge.<name>`;
 * a wildcard's authorization is for the name without `*.` (section 7.1.3),
 * so `*.example.com` and `example.com` share one record name.
 */
export function challengeRecordName(identifier: string): string {
  const base = identifier.startsWith('*.') ? identifier.slice(2) : identifier;
  return `_acme-challenge.${base.replace(/\.$/, '')}`;
}

/** What one server answered for the record name: its TXT values, or why none. */
export interface ServerAnswer {
  /** `host:port`. */
  readonly server: string;
  readonly values?: readonly string[];
  /** NXDOMAIN, a timeout, a refusal... */
  readonly problem?: string;
}

export type PropagationVerdict =
  /** Every server answers every expected value: tell the CA. */
  | { readonly kind: 'Propagated' }
  /** Some server still lacks a value (or there is no server yet): ask again. */
  | { readonly kind: 'Waiting'; readonly missing: readonly string[] }
  /** DNS_PROPAGATION_TIMEOUT passed with servers still missing a value. */
  | { readonly kind: 'TimedOut'; readonly missing: readonly string[] };

/**
 * Decides after one round of queries. A server that failed to answer counts
 * as missing; no server at all is never "propagated" (nobody was asked).
 */
export function propagationVerdict(
  expected: readonly string[],
  answers: readonly ServerAnswer[],
  elapsedMs: number,
  timeoutMs: number,
): PropagationVerdict {
  const missing = answers
    .filter((a) => a.values === undefined || !expected.every((v) => a.values?.includes(v)))
    .map((a) => (a.problem ? `${a.server} (${a.problem})` : `${a.server} (value not there yet)`));
  if (answers.length > 0 && missing.length === 0) return { kind: 'Propagated' };
  const why = answers.length === 0 ? ['no server to ask'] : missing;
  return elapsedMs >= timeoutMs
    ? { kind: 'TimedOut', missing: why }
    : { kind: 'Waiting', missing: why };
}

/** A DNS record as a resolver answer lists it (name without trailing dot). */
export interface RecordLike {
  readonly name: string;
  readonly type: string;
  readonly data?: unknown;
}

function bare(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

/**
 * Follows CNAMEs from `name` through the records of one answer (a resolver
 * returns the whole chain), at most `maxHops`: the name that holds the TXT.
 * A loop or an over-long chain stops where it is.
 */
export function followCnames(name: string, records: readonly RecordLike[], maxHops = 8): string {
  let current = bare(name);
  const seen = new Set([current]);
  for (let i = 0; i < maxHops; i++) {
    const cname = records.find((r) => r.type === 'CNAME' && bare(r.name) === current);
    if (!cname || typeof cname.data !== 'string') return current;
    const next = bare(cname.data);
    if (seen.has(next)) return current;
    seen.add(next);
    current = next;
  }
  return current;
}

/**
 * The zone a name is in, from an answer to an SOA query for it: the owner
 * of the SOA in the answer section (the name is the apex) or the authority
 * section (below the apex, RFC 2308 section 3). Undefined without one.
 */
export function zoneFromSoaAnswer(
  answers: readonly RecordLike[],
  authorities: readonly RecordLike[],
): string | undefined {
  const soa = [...answers, ...authorities].find((r) => r.type === 'SOA');
  return soa ? bare(soa.name) : undefined;
}
