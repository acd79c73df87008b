import { X509Certificate } from 'node:crypto';
import { errorMessage } from '../domain/errors.js';
import {
  PHASES,
  type AcmePhase,
  type CertBundle,
  type CertSpec,
  type Phase,
  type StoredCert,
} from '../domain/types.js';
import type { CertFacts, LiveFacts } from '../lifecycle/policy.js';
import { issuersKey, storedKey } from '../store/keys.js';
import { issuersKind, storedCertKind } from '../store/record-kinds.js';
import { bundleProblem, dnsNames, keyTypeOf, signedBy, splitPemChain } from '../util/x509.js';
import type { RecordReader } from '../store/records.js';
import { loadAriChoices } from './ari.js';
import type { ReconcilerDeps } from './deps.js';

/** Parsed live/ leaves remembered (a few per certificate at most). */
const MAX_LEAVES = 4_096;

interface LeafFacts {
  readonly serial: string;
  readonly notBefore: string;
  readonly notAfter: string;
}

/** Intermediates kept on record per CA (a CA rotates a few; Let's Encrypt has several). */
const MAX_ISSUERS = 8;

/**
 * What the reconciler gathers: the stored certificates of every phase and
 * what live/ serves, read fresh each time a decision is made.
 */
export class CertRecords {
  /** Which CA issued a certificate found in live/, by serial ('' for none of ours). */
  private readonly provenance = new Map<string, AcmePhase | ''>();
  /** What live/'s certificate says, by its PEM: parsed once, not at every pass. */
  private readonly leaves = new Map<string, LeafFacts>();

  constructor(
    private readonly deps: Pick<ReconcilerDeps, 'store' | 'live' | 'log' | 'settings' | 'issuers'>,
    readonly reader: RecordReader,
  ) {}

  /** The intermediates `directoryUrl`'s CA issued our certificates under (corrupt: none). */
  async loadIssuers(directoryUrl: string): Promise<string[]> {
    const got = await this.reader
      .read(issuersKey(directoryUrl), issuersKind)
      .catch(() => undefined);
    return got?.issuers ?? [];
  }

  /** Keeps the intermediate that signed `bundle` on record for its CA (newest first, a few). */
  async recordIssuer(directoryUrl: string, bundle: CertBundle): Promise<void> {
    const [issuer] = splitPemChain(bundle.chain);
    if (!issuer) return;
    const known = await this.loadIssuers(directoryUrl);
    if (known.includes(issuer)) return;
    const issuers = [issuer, ...known].slice(0, MAX_ISSUERS);
    await this.deps.store.store(issuersKey(directoryUrl), JSON.stringify({ issuers }, null, 2));
  }

  /**
   * What makes the certificate live/ serves adoptable, when the store has
   * no record of it: it holds together (key matches, chain verifies) and a
   * configured CA issued it, as its intermediate on record shows or as the
   * CA itself says (renewalInfo knows it). The answer is kept per serial.
   */
  private async adoptable(bundle: CertBundle, serial: string): Promise<LiveFacts['adoptable']> {
    // A CA's certificate comes with its intermediate; one without (a
    // placeholder whose record was lost) is not worth asking a CA about.
    if (splitPemChain(bundle.chain).length === 0) return undefined;
    if (bundleProblem(bundle) !== undefined) return undefined;
    const leaf = new X509Certificate(bundle.cert);
    let from = this.provenance.get(serial);
    if (from === undefined) {
      from = '';
      const { settings, issuers } = this.deps;
      const order: AcmePhase[] =
        settings.target === 'production' ? ['production', 'staging'] : ['staging', 'production'];
      for (const phase of order) {
        const url = settings.directories[phase];
        const onRecord = (await this.loadIssuers(url)).some((i) => signedBy(bundle.cert, i));
        if (onRecord || (await issuers[phase].recognizes?.(bundle.cert))) {
          from = phase;
          break;
        }
      }
      this.provenance.set(serial, from);
    }
    if (from === '') return undefined;
    return { from, domains: dnsNames(leaf), keyType: keyTypeOf(bundle.privkey) };
  }

  private leafOf(pem: string): LeafFacts {
    let facts = this.leaves.get(pem);
    if (!facts) {
      const leaf = new X509Certificate(pem);
      facts = {
        serial: leaf.serialNumber.toUpperCase(),
        notBefore: new Date(leaf.validFrom).toISOString(),
        notAfter: new Date(leaf.validTo).toISOString(),
      };
      if (this.leaves.size >= MAX_LEAVES) this.leaves.clear();
      this.leaves.set(pem, facts);
    }
    return facts;
  }

  /** A corrupt record is kept aside and reads as missing (records.ts). */
  loadStored(name: string, phase: Phase): Promise<StoredCert | undefined> {
    return this.reader.read(storedKey(name, phase), storedCertKind(phase), { cert: name });
  }

  async loadAll(name: string): Promise<Partial<Record<Phase, StoredCert>>> {
    const [selfSigned, staging, production] = await Promise.all(
      PHASES.map((p) => this.loadStored(name, p)),
    );
    return {
      ...(selfSigned && { 'self-signed': selfSigned }),
      ...(staging && { staging }),
      ...(production && { production }),
    };
  }

  /**
   * The facts a decision needs, from the store and live/ (as the pass's
   * caches hold them; `fresh`: live/ read from disk, for a lock holder).
   */
  async gather(spec: CertSpec, opts: { fresh?: boolean } = {}): Promise<CertFacts> {
    const { settings } = this.deps;
    const [staging, production, placeholder, liveBundle, ari] = await Promise.all([
      this.loadStored(spec.name, 'staging'),
      this.loadStored(spec.name, 'production'),
      this.loadStored(spec.name, 'self-signed'),
      // Files deleted from live/ by hand (the LXD habit: remove the old
      // certificate to get a new one) read as missing; the decision then
      // restores or re-issues it.
      // Kept across passes while the daemon's watch on live/ says nothing changed.
      this.deps.live.read(spec.name, { kept: !opts.fresh }).catch((err: unknown) => {
        this.deps.log.warn('live/ is incomplete; treating it as missing', {
          cert: spec.name,
          error: errorMessage(err),
        });
        return undefined;
      }),
      loadAriChoices(this.reader, spec.name, settings.directories),
    ]);
    let live: LiveFacts | undefined;
    if (liveBundle) {
      const { serial, notBefore, notAfter } = this.leafOf(liveBundle.cert);
      const known = [production, staging, placeholder].find((c) => c?.meta.serial === serial);
      const adoptable = known ? undefined : await this.adoptable(liveBundle, serial);
      live = {
        serial,
        notBefore,
        notAfter,
        phase: known?.meta.phase ?? 'foreign',
        ...(adoptable && { adoptable }),
      };
    }
    return {
      name: spec.name,
      domains: [...spec.domains].sort(),
      target: settings.target,
      keyType: settings.keyType,
      ...(spec.profile !== undefined && { profile: spec.profile }),
      directories: settings.directories,
      ...(settings.renewBeforeDays !== undefined && { renewBeforeDays: settings.renewBeforeDays }),
      stored: {
        ...(staging && { staging: staging.meta }),
        ...(production && { production: production.meta }),
      },
      ...(live && { live }),
      ...(Object.keys(ari).length > 0 && { ari }),
    };
  }
}

/** The serial of every stored record, by phase. */
export function serialsOf(
  records: Partial<Record<Phase, StoredCert>>,
): Partial<Record<Phase, string>> {
  return Object.fromEntries(
    Object.entries(records).map(([phase, r]) => [phase, r?.meta.serial]),
  ) as Partial<Record<Phase, string>>;
}
