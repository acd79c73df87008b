import { X509Certificate } from 'node:crypto';
import { errorMessage } from '../domain/errors.js';
import { PHASES, type CertSpec, type Phase, type StoredCert } from '../domain/types.js';
import type { CertFacts, LiveFacts } from '../lifecycle/policy.js';
import { storedKey } from '../store/keys.js';
import { loadAriChoices } from './ari.js';
import type { ReconcilerDeps } from './deps.js';

/**
 * What the reconciler gathers: the stored certificates of every phase and
 * what live/ serves, read fresh each time a decision is made.
 */
export class CertRecords {
  constructor(private readonly deps: Pick<ReconcilerDeps, 'store' | 'live' | 'log' | 'settings'>) {}

  async loadStored(name: string, phase: Phase): Promise<StoredCert | undefined> {
    const raw = await this.deps.store.load(storedKey(name, phase));
    return raw ? (JSON.parse(raw.toString()) as StoredCert) : undefined;
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

  /** The facts a decision needs, read fresh from the store and live/. */
  async gather(spec: CertSpec): Promise<CertFacts> {
    const { settings } = this.deps;
    const [staging, production, placeholder, liveBundle, ari] = await Promise.all([
      this.loadStored(spec.name, 'staging'),
      this.loadStored(spec.name, 'production'),
      this.loadStored(spec.name, 'self-signed'),
      // Files deleted from live/ by hand (the LXD habit: remove the old
      // certificate to get a new one) read as missing; the decision then
      // restores or re-issues it.
      this.deps.live.read(spec.name).catch((err: unknown) => {
        this.deps.log.warn('live/ is incomplete; treating it as missing', {
          cert: spec.name,
          error: errorMessage(err),
        });
        return undefined;
      }),
      loadAriChoices(this.deps.store, spec.name, settings.directories),
    ]);
    let live: LiveFacts | undefined;
    if (liveBundle) {
      const leaf = new X509Certificate(liveBundle.cert);
      const serial = leaf.serialNumber.toUpperCase();
      const known = [production, staging, placeholder].find((c) => c?.meta.serial === serial);
      live = {
        serial,
        notBefore: new Date(leaf.validFrom).toISOString(),
        notAfter: new Date(leaf.validTo).toISOString(),
        phase: known?.meta.phase ?? 'foreign',
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
