/**
 * `acme-sidecar check-config`: reach the CA, the platform and nginx the way
 * a pass would, and say in plain words what is wrong.
 */
import { randomBytes } from 'node:crypto';
import type { ChallengeResponder } from '../challenge/responder.js';
import { challengeFor, type ChallengeType } from '../domain/challenges.js';
import {
  parsePersistValue,
  persistRecordLine,
  persistRecordVerdict,
  type PersistRecordStatus,
} from '../domain/dns-persist.js';
import { errorMessage } from '../domain/errors.js';
import { PROFILE_SETTING, profileProblem } from '../domain/profiles.js';
import type { AcmePhase, CertSpec } from '../domain/types.js';
import type { Platform } from '../platform/platform.js';

export interface CheckLine {
  readonly ok: boolean;
  /** Works, but is worth a look (printed as WARN; does not fail the check). */
  readonly warn?: boolean;
  readonly what: string;
  readonly detail: string;
}

/** Platforms where anyone who can start a container or service can ask for a hostname. */
const LABEL_PLATFORMS: ReadonlySet<string> = new Set(['docker', 'rancher']);

export interface CheckConfigDeps {
  /** The CAs to reach, in order: staging, and production unless STAGING is on. */
  readonly directories: readonly { phase: AcmePhase; url: string }[];
  readonly probeDirectory: (
    url: string,
  ) => Promise<{ ok: boolean; detail: string; profiles?: Readonly<Record<string, string>> }>;
  /** ACME_PROFILE, checked against every CA's `meta.profiles` with the labels' profiles. */
  readonly profile?: string;
  readonly platform: Pick<Platform, 'name' | 'discover'>;
  /** ALLOWED_DOMAINS; empty on a label platform is warned about. */
  readonly allowedDomains?: readonly string[];
  /** The webroot responder (never the cluster's: this checks this node's nginx). */
  readonly responder: ChallengeResponder;
  /** ACME_CHALLENGE; default http-01. */
  readonly challenge?: ChallengeType;
  /**
   * dns-persist-01: the records one CA's account needs for these names
   * (registers the account if it is not yet: its URL is part of the record).
   */
  readonly persistRecords?: (
    phase: AcmePhase,
    domains: readonly string[],
  ) => Promise<readonly PersistRecordStatus[]>;
  /**
   * dns-persist-01: the TXT values each server answers at a name now
   * (DNS_RESOLVERS, else the zone's authoritative servers), to say whether
   * the printed record is there yet.
   */
  readonly lookupTxt?: (
    fqdn: string,
  ) => Promise<readonly { server: string; values?: readonly string[]; problem?: string }[]>;
  /** Unix seconds now, from the injected clock (a record's persistUntil). */
  readonly nowS?: () => number;
}

export async function checkConfig(deps: CheckConfigDeps): Promise<CheckLine[]> {
  const lines: CheckLine[] = [
    { ok: true, what: 'configuration', detail: 'every variable is valid' },
  ];
  if (LABEL_PLATFORMS.has(deps.platform.name) && !deps.allowedDomains?.length) {
    lines.push({
      ok: true,
      warn: true,
      what: 'ALLOWED_DOMAINS',
      detail: `empty: with PLATFORM=${deps.platform.name}, any label can ask for a certificate for any hostname; set ALLOWED_DOMAINS to the domains you serve, such as example.com`,
    });
  }
  const offered: { phase: AcmePhase; url: string; profiles?: Readonly<Record<string, string>> }[] =
    [];
  for (const { phase, url } of deps.directories) {
    const { ok, detail, profiles } = await deps.probeDirectory(url);
    lines.push({ ok, what: `${phase} CA`, detail });
    if (ok) offered.push({ phase, url, ...(profiles && { profiles }) });
  }
  const { platform, responder } = deps;
  let specs: readonly CertSpec[] = [];
  try {
    const found = await platform.discover({ persist: false });
    specs = found.specs;
    const skipped = found.problems.length ? `, ${found.problems.length} hostname(s) skipped` : '';
    lines.push({
      ok: true,
      what: `platform (${platform.name})`,
      detail: `${found.specs.length} certificate(s) requested${skipped}`,
    });
    for (const p of found.problems) {
      lines.push({
        ok: false,
        what: `hostname ${JSON.stringify(p.value)}`,
        detail: `${p.code}: ${p.message}`,
      });
    }
  } catch (err) {
    lines.push({ ok: false, what: `platform (${platform.name})`, detail: errorMessage(err) });
  }
  lines.push(...profileLines(deps.profile, specs, offered));
  const setting = deps.challenge ?? 'http-01';
  const persistDomains = specs
    .filter((s) => challengeFor(s, setting).type === 'dns-persist-01')
    .flatMap((s) => s.domains);
  if (persistDomains.length > 0) lines.push(...(await persistLines(deps, persistDomains)));
  const httpDomains = specs
    .filter((s) => challengeFor(s, setting).type !== 'dns-persist-01')
    .flatMap((s) => s.domains);
  // The path the CA takes: a token in WEBROOT, fetched through nginx with the hostname as Host.
  for (const domain of new Set(httpDomains)) {
    const token = randomBytes(24).toString('base64url');
    const keyAuth = `${token}.check-config`;
    try {
      await responder.present(domain, token, keyAuth);
      await responder.verify(domain, token, keyAuth);
      lines.push({
        ok: true,
        what: `webroot for ${domain}`,
        detail: 'nginx serves WEBROOT/.well-known/acme-challenge/',
      });
    } catch (err) {
      lines.push({ ok: false, what: `webroot for ${domain}`, detail: errorMessage(err) });
    } finally {
      await responder.cleanup(domain, token).catch(() => undefined);
    }
  }
  if (specs.length === 0) {
    lines.push({
      ok: false,
      what: 'certificates',
      detail: 'none requested: set DOMAINS or label services',
    });
  }
  return lines;
}

/**
 * dns-persist-01: the exact TXT record each CA's account needs, one line
 * per record (draft-ietf-acme-dns-persist section 3), for the operator to
 * set once. Not a DNS lookup: the CA's answer at the first order is the check.
 */
async function persistLines(
  deps: CheckConfigDeps,
  domains: readonly string[],
): Promise<CheckLine[]> {
  const lines: CheckLine[] = [];
  for (const { phase } of deps.directories) {
    if (!deps.persistRecords) continue;
    try {
      for (const r of await deps.persistRecords(phase, domains)) {
        const missing = await persistMissing(deps, r);
        lines.push({
          ok: true,
          ...(missing !== undefined && { warn: true }),
          what: `dns-persist-01 record (${phase} CA) for ${r.domains.join(', ')}`,
          detail: `set once: ${persistRecordLine(r)}${missing !== undefined ? ` (not in DNS yet: ${missing})` : ' (found in DNS)'}`,
        });
      }
    } catch (err) {
      lines.push({
        ok: false,
        what: `dns-persist-01 record (${phase} CA)`,
        detail: errorMessage(err),
      });
    }
  }
  return lines;
}

/**
 * Whether every server answers a TXT value at the record's name that this
 * CA would take for this account (the CA's own rules: persistRecordVerdict);
 * undefined when it does, else what is missing where.
 */
async function persistMissing(
  deps: CheckConfigDeps,
  r: PersistRecordStatus,
): Promise<string | undefined> {
  if (!deps.lookupTxt) return 'no DNS look-up configured';
  const want = parsePersistValue(r.value);
  if (!want.ok) return want.problem;
  let answers: Awaited<ReturnType<NonNullable<CheckConfigDeps['lookupTxt']>>>;
  try {
    answers = await deps.lookupTxt(r.name);
  } catch (err) {
    return errorMessage(err);
  }
  // Without a clock, persistUntil is not judged (the sidecar never writes one).
  const nowS = deps.nowS?.() ?? 0;
  const misses: string[] = [];
  for (const a of answers) {
    const verdict = persistRecordVerdict(a.values ?? [], {
      issuerDomainNames: [want.value.issuerDomainName],
      accountUri: want.value.accountUri,
      wildcard: want.value.policy === 'wildcard',
      nowS,
    });
    if (!verdict.ok) misses.push(`${a.server}: ${a.problem ?? verdict.reason}`);
  }
  if (answers.length === 0) return 'no DNS server to ask';
  return misses.length > 0 ? misses.join('; ') : undefined;
}

/**
 * Every profile asked for (ACME_PROFILE, and each label's), against every CA
 * that answered: the words `acme-sidecar once` would fail with.
 */
function profileLines(
  profile: string | undefined,
  specs: readonly CertSpec[],
  cas: readonly { phase: AcmePhase; url: string; profiles?: Readonly<Record<string, string>> }[],
): CheckLine[] {
  const wanted = new Map<string, { profile: string; from: string }>();
  if (profile !== undefined) {
    wanted.set(`${PROFILE_SETTING}=${profile}`, { profile, from: PROFILE_SETTING });
  }
  for (const s of specs) {
    if (s.profile === undefined) continue;
    const from = s.profileFrom ?? PROFILE_SETTING;
    wanted.set(`${from}=${s.profile}`, { profile: s.profile, from });
  }
  const lines: CheckLine[] = [];
  for (const ca of cas) {
    for (const w of wanted.values()) {
      const problem = profileProblem(w.profile, w.from, ca.profiles, ca.url);
      lines.push({
        ok: problem === undefined,
        what: `${ca.phase} CA profile ${w.profile}`,
        detail: problem ?? `${w.from}: the CA offers ${w.profile}`,
      });
    }
  }
  return lines;
}
