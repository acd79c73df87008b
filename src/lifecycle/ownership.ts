/**
 * Who may ask for which certificate: ALLOWED_DOMAINS, then "first holder
 * keeps it". Pure: the caller gathers every request (all sources, in
 * discovery order, one name possibly asked for by several sources), the
 * stored claims and the time; this decides which requests go ahead, which
 * are refused (and why, in words that name both sides), and what the
 * claims are now. The Discoverer persists them (store key `claims.json`).
 *
 * Rules, in order:
 * 1. A request with a hostname outside ALLOWED_DOMAINS is refused whole
 *    (`not-allowed`), like an invalid hostname.
 * 2. A certificate name is held by the source that asked for it first (its
 *    claim). While that source asks for it, it keeps it: another source
 *    asking for the same name with other hostnames or another profile is
 *    refused (`claimed`). The same name with the same hostnames and profile
 *    is one request (two services behind one hostname), as before.
 * 3. A hostname belongs to the certificate that holds it: another name
 *    asking for it is refused (`claimed`), so nginx never gets two
 *    `server_name` blocks for one hostname from us.
 * 4. A claim whose source stops asking keeps holding for CLAIM_RELEASE_MS
 *    after it was last seen (a restarting container or service must not
 *    lose its names to whoever asks next); then the conflict has ended and
 *    the next request may take it. If another source asks for exactly the
 *    same hostnames meanwhile, it takes the claim over at once (nothing
 *    changes for what is served).
 * 5. Without a claim (new names, or a lost claims record), requests are
 *    decided in discovery order: DOMAINS first, then the platform's order.
 *
 * A source is the request's `source` string as the platform reports it
 * (`env:DOMAINS`, `rancher:service/web(1s5):io.acme-sidecar.domains`,
 * `docker:container/web(0123456789ab):...`).
 */
import type { DiscoveryProblem } from '../domain/status.js';
import type { CertSpec } from '../domain/types.js';
import { disallowedHostnames } from '../domain/allowed-domains.js';

/** How long a claim outlives the last time its source asked for it. */
export const CLAIM_RELEASE_MS = 60 * 60 * 1000;
/** A held claim's `seenAt` is rewritten at most this often (not at every pass). */
const SEEN_REFRESH_FRACTION = 4;

export interface NameClaim {
  readonly domains: readonly string[];
  readonly profile?: string;
  readonly source: string;
  /** When this source took the name (ISO 8601). */
  readonly since: string;
  /** When it last asked for it, to within a quarter of CLAIM_RELEASE_MS (ISO 8601). */
  readonly seenAt: string;
}

export interface ClaimsRecord {
  readonly version: 1;
  /** By certificate name. */
  readonly names: Readonly<Record<string, NameClaim>>;
}

export const EMPTY_CLAIMS: ClaimsRecord = { version: 1, names: {} };

/** The problem codes this decision gives (domain/hostnames.ts lists them for the docs). */
export const OwnershipCode = {
  NotAllowed: 'not-allowed',
  Claimed: 'claimed',
  DuplicateName: 'duplicate-name',
} as const;

export interface OwnershipInput {
  /** Every request, in discovery order. */
  readonly requests: readonly CertSpec[];
  readonly claims: ClaimsRecord;
  /** ALLOWED_DOMAINS, canonical; empty allows any hostname. */
  readonly allowed: readonly string[];
  readonly now: Date;
  readonly releaseAfterMs?: number;
}

export interface OwnershipDecision {
  /** One request per certificate name, in discovery order. */
  readonly specs: CertSpec[];
  readonly problems: DiscoveryProblem[];
  readonly claims: ClaimsRecord;
  /** The claims differ from the input's: persist them. */
  readonly changed: boolean;
}

const sameList = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().join(',') === [...b].sort().join(',');

const entryOf = (s: CertSpec) => `${s.name}=${s.domains.join('+')}`;

export function decideOwnership(input: OwnershipInput): OwnershipDecision {
  const { now, allowed } = input;
  const nowMs = now.getTime();
  const releaseMs = input.releaseAfterMs ?? CLAIM_RELEASE_MS;
  const at = now.toISOString();
  const problems: DiscoveryProblem[] = [];
  const refuse = (s: CertSpec, code: string, message: string) =>
    problems.push({ source: s.source, value: entryOf(s), code, message });

  // Claims still holding: seen within the release period.
  const live = new Map<string, NameClaim>();
  for (const [name, c] of Object.entries(input.claims.names)) {
    const seen = Date.parse(c.seenAt);
    if (Number.isFinite(seen) && nowMs - seen < releaseMs) live.set(name, c);
  }

  // 1. ALLOWED_DOMAINS.
  const candidates: CertSpec[] = [];
  for (const r of input.requests) {
    const outside = disallowedHostnames(r.domains, allowed);
    if (outside.length === 0) {
      candidates.push(r);
      continue;
    }
    refuse(
      r,
      OwnershipCode.NotAllowed,
      `${r.source}: ${outside.join(', ')} ${outside.length > 1 ? 'are' : 'is'} outside ALLOWED_DOMAINS (${allowed.join(',')}); certificate ${r.name} is refused`,
    );
  }

  // Holders first (their claim's source), then same-content takeovers, then
  // everyone else in discovery order.
  const rank = (r: CertSpec): number => {
    const c = live.get(r.name);
    if (c?.source === r.source) return 0;
    if (c && sameList(c.domains, r.domains) && c.profile === r.profile) return 1;
    return 2;
  };
  const ordered = candidates
    .map((r, i) => ({ r, i, k: rank(r) }))
    .sort((a, b) => a.k - b.k || a.i - b.i);

  // Hostnames held by claims whose certificate nobody asks for this pass.
  const requested = new Set(candidates.map((r) => r.name));
  const heldByAbsent = new Map<string, string>();
  for (const [name, c] of live) {
    if (!requested.has(name)) for (const h of c.domains) heldByAbsent.set(h, name);
  }

  const accepted = new Map<string, { spec: CertSpec; index: number }>();
  const hostOwner = new Map<string, string>();
  const names: Record<string, NameClaim> = {};
  for (const { r, i } of ordered) {
    const prior = accepted.get(r.name)?.spec;
    const claim = live.get(r.name);
    if (prior) {
      if (sameList(prior.domains, r.domains) && prior.profile === r.profile) continue;
      const what = sameList(prior.domains, r.domains)
        ? `with profile ${prior.profile ?? '(none)'}, not ${r.profile ?? '(none)'}`
        : `with other hostnames (${prior.domains.join(', ')})`;
      if (claim) {
        refuse(
          r,
          OwnershipCode.Claimed,
          `${r.source}: certificate ${r.name} is held by ${prior.source} ${what} since ${claim.since}; refused while that source asks for it`,
        );
      } else {
        refuse(
          r,
          OwnershipCode.DuplicateName,
          `certificate ${r.name} is already requested by ${prior.source} ${what}; the first is kept`,
        );
      }
      continue;
    }
    if (claim && rank(r) === 2) {
      // Its holder does not ask this pass, but the claim still holds.
      refuse(
        r,
        OwnershipCode.Claimed,
        `${r.source}: certificate ${r.name} is held by ${claim.source} (hostnames ${claim.domains.join(', ')}) since ${claim.since}; refused until that source has not asked for it for ${Math.round(releaseMs / 60_000)} minutes`,
      );
      continue;
    }
    const taken = r.domains
      .map((h) => ({ h, by: hostOwner.get(h) ?? heldByAbsent.get(h) }))
      .find((x) => x.by !== undefined && x.by !== r.name);
    if (taken?.by !== undefined) {
      const holder = accepted.get(taken.by)?.spec.source ?? live.get(taken.by)?.source ?? '?';
      refuse(
        r,
        OwnershipCode.Claimed,
        `${r.source}: hostname ${taken.h} belongs to certificate ${taken.by} (held by ${holder}); certificate ${r.name} is refused while it does`,
      );
      continue;
    }
    accepted.set(r.name, { spec: r, index: i });
    for (const h of r.domains) hostOwner.set(h, r.name);
    const unchanged =
      claim !== undefined &&
      claim.source === r.source &&
      sameList(claim.domains, r.domains) &&
      claim.profile === r.profile;
    const fresh =
      claim !== undefined && nowMs - Date.parse(claim.seenAt) < releaseMs / SEEN_REFRESH_FRACTION;
    names[r.name] =
      unchanged && fresh
        ? claim
        : {
            domains: [...r.domains],
            ...(r.profile !== undefined && { profile: r.profile }),
            source: r.source,
            // A takeover of the same hostnames keeps the claim's age.
            since: claim && rank(r) <= 1 ? claim.since : at,
            seenAt: at,
          };
  }
  for (const [name, c] of live) if (!accepted.has(name) && !(name in names)) names[name] = c;

  const sorted: Record<string, NameClaim> = {};
  for (const name of Object.keys(names).sort()) sorted[name] = names[name] as NameClaim;
  const claims: ClaimsRecord = { version: 1, names: sorted };
  const specs = [...accepted.values()].sort((a, b) => a.index - b.index).map((x) => x.spec);
  return {
    specs,
    problems,
    claims,
    changed: JSON.stringify(claims) !== JSON.stringify(canonicalClaims(input.claims)),
  };
}

/**
 * Until when (ms since the epoch, exclusive) `decideOwnership` gives the
 * same decision for the same requests and claims as at `now`, when that
 * decision left the claims unchanged (`changed` false: no claim made or
 * refreshed, so no timestamp of `now` is in it). Its only clock
 * comparisons are each claim's release (seenAt + release period) and the
 * refresh of its seenAt (a quarter of that): the first of those still
 * ahead. The Discoverer skips the decision before it (reconcile/discoverer.ts).
 */
export function ownershipStableUntil(
  claims: ClaimsRecord,
  now: Date,
  releaseAfterMs: number = CLAIM_RELEASE_MS,
): number {
  const nowMs = now.getTime();
  let first = Infinity;
  for (const c of Object.values(claims.names)) {
    const seen = Date.parse(c.seenAt);
    for (const t of [seen + releaseAfterMs / SEEN_REFRESH_FRACTION, seen + releaseAfterMs]) {
      if (t > nowMs && t < first) first = t;
    }
  }
  return first;
}

function canonicalClaims(c: ClaimsRecord): ClaimsRecord {
  const names: Record<string, NameClaim> = {};
  for (const name of Object.keys(c.names).sort()) names[name] = c.names[name] as NameClaim;
  return { version: 1, names };
}

/**
 * The claims record from the store, checked field by field. Undefined when
 * it is not one (corrupt, or written by something else): the caller then
 * starts from no claims (see Discoverer).
 */
export function parseClaims(text: string): ClaimsRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as { version?: unknown; names?: unknown };
  if (o.version !== 1 || typeof o.names !== 'object' || o.names === null) return undefined;
  const names: Record<string, NameClaim> = {};
  for (const [name, raw] of Object.entries(o.names as Record<string, unknown>)) {
    const c = raw as Partial<Record<keyof NameClaim, unknown>>;
    if (
      typeof raw !== 'object' ||
      raw === null ||
      !Array.isArray(c.domains) ||
      !c.domains.every((d) => typeof d === 'string') ||
      typeof c.source !== 'string' ||
      typeof c.since !== 'string' ||
      typeof c.seenAt !== 'string' ||
      (c.profile !== undefined && typeof c.profile !== 'string')
    ) {
      return undefined;
    }
    names[name] = {
      domains: c.domains as string[],
      ...(typeof c.profile === 'string' && { profile: c.profile }),
      source: c.source,
      since: c.since,
      seenAt: c.seenAt,
    };
  }
  return { version: 1, names };
}
