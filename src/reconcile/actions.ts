import { SidecarError } from '../domain/errors.js';
import type { AcmePhase, CertBundle, CertSpec, Phase, StoredCert } from '../domain/types.js';
import { dueByAriWindow } from '../lifecycle/ari.js';
import type { Action, CertFacts } from '../lifecycle/policy.js';
import { decidePlatform, type PlatformAction } from '../lifecycle/platform-policy.js';
import { ReconcileReason } from '../lifecycle/reasons.js';
import type { PlatformCopy } from '../platform/platform.js';
import { storedKey } from '../store/keys.js';
import { storedCertKind } from '../store/record-kinds.js';
import type { Logger } from '../util/log.js';
import { describeBundle } from '../util/x509.js';
import { loadAriRecord } from './ari.js';
import type { ReconcilerDeps } from './deps.js';
import { serialsOf, type CertRecords } from './records.js';

/** The platform decision for one certificate, with what it was made from. */
export interface PlatformPlan {
  readonly facts: CertFacts;
  readonly copy: PlatformCopy | undefined;
  readonly records: Partial<Record<Phase, StoredCert>>;
  readonly action: PlatformAction;
}

/** A certificate the CA issued whose store write failed, kept to store again. */
export interface HeldCert extends StoredCert {
  readonly phase: AcmePhase;
}

/**
 * Whether a certificate issued earlier but never stored (the write failed:
 * a full disk, a lost etcd quorum) still answers an order about to be
 * placed: same CA and phase, the same names, key type and profile, and not
 * expired. Storing it then replaces the order, which would otherwise be
 * placed again for a certificate already paid for in rate limit.
 */
export function heldCertAnswers(
  held: HeldCert,
  want: {
    readonly phase: AcmePhase;
    readonly directoryUrl: string;
    readonly spec: CertSpec;
    readonly keyType: string;
  },
  now: Date,
): boolean {
  const { meta } = held;
  const names = (d: readonly string[]) => [...d].sort().join(',');
  return (
    held.phase === want.phase &&
    meta.directoryUrl === want.directoryUrl &&
    names(meta.domains) === names(want.spec.domains) &&
    meta.keyType === want.keyType &&
    meta.profile === want.spec.profile &&
    Date.parse(meta.notAfter) > now.getTime()
  );
}

/**
 * What the reconciler writes: certificates to the store, to live/ and to
 * the platform. Each method carries out one decision already made.
 */
export class CertActions {
  /** Per certificate name: issued, not stored (see heldCertAnswers). */
  private readonly held = new Map<string, HeldCert>();

  constructor(
    private readonly deps: Pick<
      ReconcilerDeps,
      'store' | 'live' | 'issuers' | 'platform' | 'clock' | 'settings' | 'budget'
    >,
    private readonly records: CertRecords,
  ) {}

  /** Carries out one step; returns the certificate if live/ changed. */
  async act(
    spec: CertSpec,
    action: Action,
    log: Logger,
    signal?: AbortSignal,
  ): Promise<StoredCert | undefined> {
    const { live, issuers, clock, settings } = this.deps;
    switch (action.kind) {
      case 'none':
        return undefined;
      case 'placeholder': {
        const bundle = await issuers['self-signed'].issue(spec, settings.keyType);
        const meta = this.describe(spec, bundle, 'self-signed', '');
        await this.storeChecked(spec.name, 'self-signed', { meta, bundle });
        await live.write(spec.name, bundle);
        log.info('self-signed placeholder written', {
          reason: action.reason,
          phase: 'self-signed',
        });
        return { meta, bundle };
      }
      case 'issue': {
        const issuer = issuers[action.phase];
        const started = clock.now().getTime();
        const held = this.held.get(spec.name);
        this.held.delete(spec.name);
        if (
          held &&
          heldCertAnswers(
            held,
            {
              phase: action.phase,
              directoryUrl: issuer.directoryUrl,
              spec,
              keyType: settings.keyType,
            },
            clock.now(),
          )
        ) {
          await this.storeIssued(spec, held, issuer.directoryUrl);
          log.info(
            'certificate issued earlier stored now (its store write had failed); no order placed',
            {
              phase: action.phase,
              reason: action.reason,
              serial: held.meta.serial,
              notAfter: held.meta.notAfter,
            },
          );
          return undefined;
        }
        const budget = this.deps.budget;
        const renewal = await this.renewalOf(spec, action.phase, issuer.directoryUrl);
        await budget?.beforeOrder(action.phase, issuer.directoryUrl, spec.domains, {
          exempt: renewal?.inAriWindow === true,
        });
        log.info('ordering certificate', {
          phase: action.phase,
          reason: action.reason,
          ...(renewal && { replacing: renewal.serial, inAriWindow: renewal.inAriWindow }),
        });
        let bundle: CertBundle;
        try {
          bundle = await issuer.issue(
            spec,
            settings.keyType,
            signal,
            renewal ? { replacing: renewal.cert } : {},
          );
        } catch (err) {
          await budget?.afterOrder(action.phase, issuer.directoryUrl, spec.domains, err);
          throw err;
        }
        await budget?.afterOrder(action.phase, issuer.directoryUrl, spec.domains, 'issued');
        const meta = this.describe(spec, bundle, action.phase, issuer.directoryUrl);
        if (!meta.chainVerified) {
          throw new SidecarError('CHAIN_INVALID', 'the CA returned a chain that does not verify');
        }
        const missing = spec.domains.filter((d) => !meta.domains.includes(d));
        if (missing.length) {
          throw new SidecarError('CHAIN_INVALID', `the certificate lacks ${missing.join(', ')}`);
        }
        await this.storeIssued(spec, { phase: action.phase, meta, bundle }, issuer.directoryUrl);
        log.info('certificate issued', {
          phase: action.phase,
          reason: action.reason,
          serial: meta.serial,
          notAfter: meta.notAfter,
          ms: clock.now().getTime() - started,
        });
        return undefined;
      }
      case 'adopt': {
        // The decision saw live/ hold a certificate this CA issued; read it
        // again under the lock and check it again before it is trusted.
        const bundle = await live.read(spec.name);
        const directoryUrl = settings.directories[action.phase];
        if (!bundle) return undefined;
        const meta = this.describe(spec, bundle, action.phase, directoryUrl);
        if (!meta.chainVerified) return undefined;
        // The profile it was ordered under is not on the certificate: it is
        // taken to be the one wanted now (a profile changes only lifetime).
        await this.storeChecked(spec.name, action.phase, { meta, bundle });
        await this.records.recordIssuer(directoryUrl, bundle).catch(() => undefined);
        log.warn(
          'the store had no valid record of the certificate live/ serves; adopted it back, no order placed',
          {
            phase: action.phase,
            reason: action.reason,
            serial: meta.serial,
            notAfter: meta.notAfter,
          },
        );
        return undefined;
      }
      case 'deploy': {
        const stored = await this.records.loadStored(spec.name, action.phase);
        if (!stored) return undefined;
        await live.write(spec.name, stored.bundle);
        log.info('certificate deployed', {
          phase: action.phase,
          reason: action.reason,
          serial: stored.meta.serial,
        });
        return stored;
      }
    }
  }

  /**
   * The certificate an order from `phase`'s CA renews: the stored one of that
   * phase, from the same CA, for the same hostnames (its CertID goes out as
   * `replaces`). `inAriWindow`: the CA's own window made it due, so rate
   * limits do not hold it back.
   */
  private async renewalOf(
    spec: CertSpec,
    phase: AcmePhase,
    directoryUrl: string,
  ): Promise<{ cert: string; serial: string; inAriWindow: boolean } | undefined> {
    const stored = await this.records.loadStored(spec.name, phase);
    if (!stored || stored.meta.directoryUrl !== directoryUrl) return undefined;
    const wanted = [...spec.domains].sort().join(',');
    if ([...stored.meta.domains].sort().join(',') !== wanted) return undefined;
    const record = await loadAriRecord(this.records.reader, spec.name, phase);
    return {
      cert: stored.bundle.cert,
      serial: stored.meta.serial,
      inAriWindow: dueByAriWindow(record, stored.meta, this.deps.clock.now()),
    };
  }

  /** What the platform should hold for `spec` (lifecycle/platform-policy.ts decides). */
  async platformPlan(spec: CertSpec, facts?: CertFacts): Promise<PlatformPlan> {
    const { platform, clock } = this.deps;
    const [gathered, copy, records] = await Promise.all([
      facts ?? this.records.gather(spec),
      platform.read(spec.name),
      this.records.loadAll(spec.name),
    ]);
    const action = decidePlatform(
      {
        ...(gathered.live && { live: gathered.live }),
        ...(copy && { copy }),
        serials: serialsOf(records),
      },
      clock.now(),
    );
    return { facts: gathered, copy, records, action };
  }

  /**
   * Makes the platform hold what nginx serves here (see
   * lifecycle/platform-policy.ts for when it does not).
   */
  async syncPlatform(
    spec: CertSpec,
    log: Logger,
    known?: CertFacts,
  ): Promise<PlatformPlan | undefined> {
    const { platform } = this.deps;
    if (!platform.holdsCertificates) return undefined;
    const plan = await this.platformPlan(spec, known);
    const { facts, copy, records, action } = plan;
    if (action.kind === 'none') return plan;
    if (action.kind === 'conflict') {
      throw new SidecarError(
        'PLATFORM_CONFLICT',
        `${platform.name} already has a certificate named ${spec.name} that acme-sidecar did not create; not overwriting it`,
      );
    }
    const phase = facts.live?.phase;
    const record = phase && phase !== 'foreign' ? records[phase] : undefined;
    if (!record) return plan;
    log.info('pushing certificate to the platform', {
      platform: platform.name,
      reason: action.reason,
      phase: record.meta.phase,
      serial: record.meta.serial,
    });
    await platform.push(record, copy);
    return plan;
  }

  /**
   * The store holds nothing for this certificate but the platform holds a
   * valid one of ours: the local volume was lost. Cattle never returns a
   * private key after create, so a new certificate must be issued; say so.
   */
  async noteLostLocalCopy(spec: CertSpec, log: Logger): Promise<void> {
    const { platform, clock } = this.deps;
    const records = await this.records.loadAll(spec.name);
    if (Object.values(records).some(Boolean)) return;
    const copy = await platform.read(spec.name);
    if (copy?.ours && (!copy.notAfter || clock.now() < new Date(copy.notAfter))) {
      log.warn(
        'local copy lost: the platform holds a valid certificate of ours, but its private key cannot be read back from it; issuing a new certificate',
        { reason: ReconcileReason.LocalLost, serial: copy.serial, platform: platform.name },
      );
    }
  }

  /** Forgets what is held for certificates no longer wanted (a held one carries its key). */
  retain(names: ReadonlySet<string>): void {
    for (const name of this.held.keys()) if (!names.has(name)) this.held.delete(name);
  }

  /** Stores an issued certificate; if that fails, holds it for the next attempt. */
  private async storeIssued(spec: CertSpec, cert: HeldCert, directoryUrl: string): Promise<void> {
    const { meta, bundle } = cert;
    try {
      await this.storeChecked(spec.name, cert.phase, { meta, bundle });
    } catch (err) {
      this.held.set(spec.name, cert);
      throw err;
    }
    // How a copy in live/ is recognised later, if this record is lost.
    await this.records.recordIssuer(directoryUrl, bundle).catch(() => undefined);
  }

  /**
   * Writes a certificate record. describeBundle checked its bundle
   * (chainVerified), so reading it back in this pass need not check it
   * again (RecordReader.vouch).
   */
  private async storeChecked(name: string, phase: Phase, stored: StoredCert): Promise<void> {
    const json = JSON.stringify(stored);
    await this.deps.store.store(storedKey(name, phase), json, { secret: true });
    if (stored.meta.chainVerified) this.records.reader.vouch(json, storedCertKind(phase), stored);
  }

  private describe(spec: CertSpec, bundle: CertBundle, phase: Phase, directoryUrl: string) {
    const meta = describeBundle(bundle, {
      name: spec.name,
      phase,
      directoryUrl,
      keyType: this.deps.settings.keyType,
      issuedAt: this.deps.clock.now(),
    });
    // The profile the order named: a certificate under another one is re-issued.
    return phase !== 'self-signed' && spec.profile !== undefined
      ? { ...meta, profile: spec.profile }
      : meta;
  }
}
