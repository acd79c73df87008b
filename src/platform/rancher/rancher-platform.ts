import { SidecarError } from '../../domain/errors.js';
import { parseDomainList } from '../../domain/hostnames.js';
import type { CertSpec, StoredCert } from '../../domain/types.js';
import type { Logger } from '../../util/log.js';
import { waitFor } from '../../util/retry.js';
import type { Discovery, DiscoveryProblem, Platform, PlatformCopy } from '../platform.js';
import type { CattleClient } from './cattle-client.js';
import { specsFromLabels } from '../labels.js';

// Shared with every platform that reads labels; exported here as before.
export { DENT_LABEL, DOMAINS_LABEL, parseDentLabel } from '../labels.js';

/** In the `description` of every certificate this sidecar creates. */
export const OWNER_MARKER = 'managed-by=acme-sidecar';

/**
 * The description this sidecar writes: what it is, and which certificate
 * name owns it (`owner=<name>`). Anyone who can edit a description in
 * Rancher could write the marker, so ownership is not a substring: the
 * whole parenthesis must parse, and the owner must be the name pushed.
 */
export function ownerDescription(phase: string, domains: readonly string[], name: string): string {
  return `${phase} certificate for ${domains.join(', ')} (${OWNER_MARKER} owner=${name}; changes are overwritten)`;
}

/** Who owns a Rancher certificate, read from its description. */
export type RancherOwner =
  | { readonly kind: 'foreign' }
  /** Written before owner= was recorded: taken as owned by its own name, and upgraded on the next push. */
  | { readonly kind: 'legacy' }
  | { readonly kind: 'owned'; readonly name: string };

/** Same rule LiveDir applies to certificate names. */
const OWNER_NAME = '[a-z0-9][a-z0-9._-]{0,199}';
const OWNED = new RegExp(
  `^(?:self-signed|staging|production) certificate for [^()]* \\(${OWNER_MARKER} owner=(${OWNER_NAME}); changes are overwritten\\)$`,
);
const LEGACY = new RegExp(
  `^(?:self-signed|staging|production) certificate for [^()]* \\(${OWNER_MARKER}; changes are overwritten\\)$`,
);

export function parseOwner(description: string | null | undefined): RancherOwner {
  const d = description ?? '';
  const m = OWNED.exec(d);
  if (m) return { kind: 'owned', name: m[1] as string };
  return LEGACY.test(d) ? { kind: 'legacy' } : { kind: 'foreign' };
}

const GONE_STATES = new Set(['removed', 'purged', 'removing', 'purging']);

interface CattleService {
  id: string;
  name?: string;
  state?: string;
  launchConfig?: { labels?: Record<string, unknown> } | null;
  secondaryLaunchConfigs?: { labels?: Record<string, unknown> }[] | null;
}

interface CattleCertificate {
  id: string;
  name?: string;
  state?: string;
  removed?: string | null;
  description?: string | null;
  serialNumber?: string | null;
  expiresAt?: string | null;
  transitioning?: string | null;
  transitioningMessage?: string | null;
  links?: { self?: string };
}

interface CattleLoadBalancer {
  id: string;
  state?: string;
  lbConfig?: { defaultCertificateId?: string | null; certificateIds?: string[] | null } | null;
  actions?: { update?: string };
}

const MONTHS = 'Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec'.split(' ');

/** Cattle dates are Java's Date#toString: `Thu Dec 24 18:53:38 UTC 2026`. */
export function parseCattleDate(s: string | null | undefined): Date | undefined {
  if (!s) return undefined;
  const m = /^\w{3} (\w{3}) (\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (UTC|GMT|Z) (\d{4})$/.exec(s.trim());
  if (m) {
    const [, mon, d, hh, mm, ss, , y] = m;
    const month = MONTHS.indexOf(mon ?? '');
    if (month >= 0) {
      return new Date(Date.UTC(Number(y), month, Number(d), Number(hh), Number(mm), Number(ss)));
    }
  }
  const iso = Date.parse(s);
  return Number.isNaN(iso) ? undefined : new Date(iso);
}

/** Cattle's serialNumber is decimal; ours is hex. */
export function cattleSerialToHex(s: string | null | undefined): string | undefined {
  if (!s || !/^\d+$/.test(s.trim())) return undefined;
  return BigInt(s.trim()).toString(16).toUpperCase();
}

function labelsOf(svc: CattleService): Record<string, string>[] {
  const secondary = Array.isArray(svc.secondaryLaunchConfigs) ? svc.secondaryLaunchConfigs : [];
  const all = [svc.launchConfig?.labels, ...secondary.map((c) => c?.labels)];
  return all
    .filter((l): l is Record<string, unknown> => !!l && typeof l === 'object')
    .map((l) =>
      Object.fromEntries(
        Object.entries(l).filter((e): e is [string, string] => typeof e[1] === 'string'),
      ),
    );
}

export interface RancherPlatformOptions {
  /** DOMAINS (and DOMAINS_FILE), unioned with the labels; read at every discovery. */
  readonly domains: () => Promise<string>;
  readonly log: Logger;
  /** How long to wait for a certificate update to settle (`transitioning`). */
  readonly transitionTimeoutMs?: number;
}

/**
 * Rancher 1.x: hostnames from service labels (plus DOMAINS), certificates
 * pushed to the Cattle `certificate` resource, updated in place so load
 * balancers that reference them by id keep working.
 */
export class RancherPlatform implements Platform {
  readonly name = 'rancher';
  readonly holdsCertificates = true;

  /**
   * During a pass: the certificates collection, read once (at the first
   * `read`) and looked up by lower-cased name, instead of one filtered GET
   * per certificate. Names pushed in this pass are looked up afresh.
   */
  private pass:
    | {
        listing?: Promise<Map<string, CattleCertificate>>;
        /** The listing once read (copyVersion answers from it without a promise). */
        listed?: Map<string, CattleCertificate>;
        readonly pushed: Set<string>;
      }
    | undefined;
  /** DOMAINS as last read, and what it gave. */
  private fromEnv: { readonly text: string; readonly found: Discovery } | undefined;
  /** The last listing's items and the map made of them: the same items, the same map. */
  private byName:
    | { readonly items: readonly CattleCertificate[]; readonly map: Map<string, CattleCertificate> }
    | undefined;

  constructor(
    private readonly client: CattleClient,
    private readonly opts: RancherPlatformOptions,
  ) {}

  beginPass(): void {
    this.pass = { pushed: new Set() };
  }

  endPass(): void {
    this.pass = undefined;
  }

  async discover(): Promise<Discovery> {
    const text = await this.opts.domains();
    // DOMAINS parsed once per change: the same text, the same specs (the
    // Discoverer then sees the same requests as in the last pass).
    if (this.fromEnv?.text !== text) {
      this.fromEnv = { text, found: parseDomainList(text, 'env:DOMAINS') };
    }
    const fromEnv = this.fromEnv.found;
    const specs: CertSpec[] = [...fromEnv.specs];
    const problems: DiscoveryProblem[] = [...fromEnv.problems];
    // Both collections, de-duplicated by id: a load balancer can carry labels too.
    // Unchanged pages are not parsed again (listKept): their services are the
    // same objects, whose labels were read into specs once (labelled).
    const [services, lbs] = await Promise.all([
      this.client.listKept('services', {}, serviceFields),
      this.client.listKept('loadBalancerServices', {}, serviceFields),
    ]);
    const seen = new Set<string>();
    for (const list of [services, lbs]) {
      for (const svc of list) {
        if (typeof svc.id !== 'string' || seen.has(svc.id)) continue;
        seen.add(svc.id);
        if (GONE_STATES.has(svc.state ?? '')) continue;
        const found = labelled(svc);
        specs.push(...found.specs);
        problems.push(...found.problems);
      }
    }
    // Every request as found: the Discoverer decides who gets a name (lifecycle/ownership.ts).
    return { specs, problems };
  }

  private async findByName(name: string): Promise<CattleCertificate | undefined> {
    // Filters are applied server-side when known and ignored when not:
    // filter on our side too. Names match case-insensitively in Cattle.
    const all = await this.client.list<CattleCertificate>('certificates', {
      name,
      removed_null: 'true',
    });
    return all.find((c) => isLive(c) && c.name?.toLowerCase() === name.toLowerCase());
  }

  /** In a pass: from the collection read once; a name pushed in this pass is read afresh. */
  private async lookUp(name: string): Promise<CattleCertificate | undefined> {
    const pass = this.pass;
    if (!pass || pass.pushed.has(name.toLowerCase())) return this.findByName(name);
    return (await this.listing(pass)).get(name.toLowerCase());
  }

  /**
   * The certificates collection, read once per pass. A page unchanged since
   * the last pass is not parsed again (CattleClient.listKept): its
   * certificates are the same objects, which is what `copyVersion` tells.
   */
  private listing(
    pass: NonNullable<RancherPlatform['pass']>,
  ): Promise<Map<string, CattleCertificate>> {
    pass.listing ??= this.client
      .listKept('certificates', { removed_null: 'true' }, certificateFields)
      .then((items) => {
        if (this.byName?.items !== items) this.byName = { items, map: byLowerName(items) };
        if (this.pass === pass) pass.listed = this.byName.map;
        return this.byName.map;
      });
    // A failed listing is not kept: the next read of this pass tries again.
    const listing = pass.listing;
    listing.catch(() => {
      if (pass.listing === listing) delete pass.listing;
    });
    return listing;
  }

  /**
   * In a pass: the listed certificate `read(name)` answers from (null:
   * none); see Platform. Once the listing is read, a plain value.
   */
  copyVersion(name: string): object | null | undefined | Promise<object | null | undefined> {
    const pass = this.pass;
    const key = name.toLowerCase();
    if (!pass || pass.pushed.has(key)) return undefined;
    if (pass.listed) return pass.listed.get(key) ?? null;
    return this.listing(pass).then((listed) => listed.get(key) ?? null);
  }

  async read(name: string): Promise<PlatformCopy | undefined> {
    const c = await this.lookUp(name);
    return c && this.copyOf(c, name);
  }

  private copyOf(c: CattleCertificate, name: string): PlatformCopy {
    const notAfter = parseCattleDate(c.expiresAt);
    return {
      id: c.id,
      serial: cattleSerialToHex(c.serialNumber) ?? '',
      ...(notAfter && { notAfter: notAfter.toISOString() }),
      ...ownership(parseOwner(c.description), name),
    };
  }

  async push(cert: StoredCert, existing?: PlatformCopy): Promise<void> {
    const { meta, bundle } = cert;
    const body = {
      type: 'certificate',
      name: meta.name,
      // The leaf alone, and only the intermediates: the full chain in
      // certChain made load balancers serve the leaf twice.
      cert: bundle.cert,
      certChain: bundle.chain,
      key: bundle.privkey,
      description: ownerDescription(meta.phase, meta.domains, meta.name),
    };
    const project = await this.client.projectId();
    this.pass?.pushed.add(meta.name.toLowerCase());
    let target = existing;
    if (!target?.id) {
      try {
        await this.client.request('POST', `projects/${project}/certificates`, body);
        this.opts.log.info('certificate created in Rancher', {
          cert: meta.name,
          serial: meta.serial,
        });
        return;
      } catch (err) {
        // Someone created it since we looked: take it over only if it is ours.
        if (!(err instanceof SidecarError && /NotUnique/.test(err.message))) throw err;
        const found = await this.findByName(meta.name);
        target = found && this.copyOf(found, meta.name);
        if (!target?.id) throw err;
      }
    }
    if (!target.ours) {
      throw new SidecarError(
        'PLATFORM_CONFLICT',
        target.ownedBy !== undefined
          ? `Rancher's certificate named ${meta.name} is managed by acme-sidecar for the certificate ${target.ownedBy}, not ${meta.name}; leaving it alone`
          : `Rancher already has a certificate named ${meta.name} that acme-sidecar did not create; leaving it alone`,
      );
    }
    await this.client.request('PUT', `projects/${project}/certificates/${target.id}`, body);
    await this.waitSettled(target.id);
    await this.reloadLoadBalancers(target.id);
    this.opts.log.info('certificate updated in Rancher', {
      cert: meta.name,
      serial: meta.serial,
      id: target.id,
    });
  }

  /** Polls while `transitioning` is `yes`: 150 ms growing to 2 s, bounded. */
  private async waitSettled(id: string): Promise<void> {
    await waitFor(
      async () => {
        const c = await this.client.get<CattleCertificate>(`certificates/${id}`);
        if (c.transitioning === 'error') {
          throw new SidecarError(
            'PLATFORM_REJECTED',
            `Rancher could not apply certificate ${id}: ${c.transitioningMessage ?? 'error'}`,
          );
        }
        return c.transitioning === 'yes' ? undefined : true;
      },
      {
        intervalMs: (n) => Math.min(150 * 2 ** (n - 1), 2000),
        timeout: {
          ms: this.opts.transitionTimeoutMs ?? 120_000,
          error: () =>
            new SidecarError(
              'PLATFORM_UNAVAILABLE',
              `certificate ${id} still transitioning after the timeout`,
              { retryable: true },
            ),
        },
      },
    );
  }

  /** Load balancers that reference the certificate reload it through their `update` action. */
  private async reloadLoadBalancers(id: string): Promise<void> {
    const lbs = await this.client.list<CattleLoadBalancer>('loadBalancerServices');
    for (const lb of lbs) {
      if (GONE_STATES.has(lb.state ?? '')) continue;
      const cfg = lb.lbConfig ?? {};
      const uses = cfg.defaultCertificateId === id || (cfg.certificateIds ?? []).includes(id);
      if (!uses || !lb.actions?.update) continue;
      await this.client.request('POST', lb.actions.update, {});
      this.opts.log.info('load balancer asked to reload its certificates', {
        loadBalancer: lb.id,
        certificate: id,
      });
    }
  }
}

/** What is kept of a listed service (listKept keeps it across passes): the fields read. */
function serviceFields(raw: unknown): CattleService {
  const s = (raw ?? {}) as Record<string, unknown>;
  const labels = (c: unknown) => {
    const l = (c as { labels?: unknown } | null | undefined)?.labels;
    return l && typeof l === 'object' ? { labels: l as Record<string, unknown> } : {};
  };
  const secondary = Array.isArray(s.secondaryLaunchConfigs) ? s.secondaryLaunchConfigs : [];
  return {
    id: s.id as string,
    ...(typeof s.name === 'string' && { name: s.name }),
    ...(typeof s.state === 'string' && { state: s.state }),
    launchConfig: labels(s.launchConfig),
    secondaryLaunchConfigs: secondary.map(labels),
  };
}

/** What a kept service's labels ask for, read once per service object. */
const labelledCache = new WeakMap<CattleService, Discovery>();
function labelled(svc: CattleService): Discovery {
  let found = labelledCache.get(svc);
  if (!found) {
    const source = `rancher:service/${svc.name ?? '?'}(${svc.id})`;
    const specs: CertSpec[] = [];
    const problems: DiscoveryProblem[] = [];
    for (const labels of labelsOf(svc)) {
      const parsed = specsFromLabels(labels, source);
      specs.push(...parsed.specs);
      problems.push(...parsed.problems);
    }
    found = { specs, problems };
    labelledCache.set(svc, found);
  }
  return found;
}

/** What is kept of a listed certificate (listKept keeps it across passes): the fields read. */
function certificateFields(raw: unknown): CattleCertificate {
  const c = (raw ?? {}) as Record<string, unknown>;
  const str = (k: string) => (typeof c[k] === 'string' ? (c[k] as string) : undefined);
  const out: { -readonly [K in keyof CattleCertificate]: CattleCertificate[K] } = {
    id: c.id as string,
  };
  for (const k of ['name', 'state', 'description', 'serialNumber', 'expiresAt'] as const) {
    const v = str(k);
    if (v !== undefined) out[k] = v;
  }
  // Any truthy value means removed (isLive); kept as a string.
  if (c.removed) out.removed = String(c.removed as string);
  return out;
}

/** Not removed (nor being removed): a certificate a name can refer to. */
function isLive(c: CattleCertificate | undefined): c is CattleCertificate {
  return typeof c?.id === 'string' && !c.removed && !GONE_STATES.has(c.state ?? '');
}

/** The live certificates by lower-cased name (Cattle names match case-insensitively); the first wins. */
function byLowerName(all: readonly CattleCertificate[]): Map<string, CattleCertificate> {
  const out = new Map<string, CattleCertificate>();
  for (const c of all) {
    if (!isLive(c) || typeof c.name !== 'string') continue;
    const key = c.name.toLowerCase();
    if (!out.has(key)) out.set(key, c);
  }
  return out;
}

/** Ours to overwrite only when it records this very name as its owner (or predates owner=). */
function ownership(owner: RancherOwner, name: string): { ours: boolean; ownedBy?: string } {
  if (owner.kind === 'legacy') return { ours: true };
  if (owner.kind === 'foreign') return { ours: false };
  return owner.name === name ? { ours: true } : { ours: false, ownedBy: owner.name };
}
