import { errorMessage } from '../domain/errors.js';
import type { AcmePhase, CertMeta, CertSpec } from '../domain/types.js';
import {
  ariCheck,
  ariRenewAt,
  nextAriRecord,
  type AriRecord,
  type AriSubject,
} from '../lifecycle/ari.js';
import type { AriChoice } from '../lifecycle/policy.js';
import { ariKey } from '../store/keys.js';
import { ariKind } from '../store/record-kinds.js';
import type { RecordReader } from '../store/records.js';
import type { Logger } from '../util/log.js';
import type { ReconcilerDeps } from './deps.js';
import type { CertRecords } from './records.js';

/** What ARI asks about: a stored certificate's serial, CA and validity. */
function ariSubject(meta: CertMeta): AriSubject {
  return {
    serial: meta.serial,
    directoryUrl: meta.directoryUrl,
    notBefore: new Date(meta.notBefore),
    notAfter: new Date(meta.notAfter),
  };
}

/**
 * The gather-and-record side of ARI (RFC 9773): asks the CA that issued the
 * target phase's certificate for its renewal window when that is due, and
 * keeps the window, the time drawn in it and the next check beside the
 * certificate (`certs/<name>/<phase>.ari.json`). The decisions are in
 * lifecycle/ari.ts; the fetch is the issuer's.
 *
 * Each certificate is asked afresh the first time this process sees it
 * (`acme-sidecar once` always asks, and so does a restarted daemon); after
 * that the daemon asks again only once the CA's Retry-After (clamped to
 * 1 min..6 h) has passed, or when the certificate changed. A certificate
 * this process issued is first asked about a tenth of its lifetime later,
 * at most 6 h (lifecycle/ari.ts ariFirstCheckAt; the lifetime rule and
 * renewSource `lifetime` meanwhile): `once` asks nothing about what it
 * has just issued, and the next run asks.
 */
export class AriTracker {
  /**
   * By certificate name (the phase is this process's target): the serial
   * asked about in this process. One entry per certificate, so a renewal
   * replaces it and a daemon that renews for months holds no more than it
   * has certificates (`retain` drops those that left).
   */
  private readonly asked = new Map<string, string>();
  /** By certificate name: the serial this process issued and has not asked about yet, and when. */
  private readonly issued = new Map<string, { readonly serial: string; readonly at: Date }>();
  /**
   * By certificate name: the serial whose CA answered `unsupported` (ACME_ARI
   * off, or no renewalInfo in its directory, which acme-client fetches once):
   * asking again answers the same without a request (quietUntil).
   */
  private readonly unsupported = new Map<string, string>();

  constructor(
    private readonly deps: Pick<
      ReconcilerDeps,
      'store' | 'issuers' | 'clock' | 'random' | 'settings'
    >,
    private readonly records: CertRecords,
  ) {}

  /**
   * Asks the CA when due and records the answer; returns the record that
   * holds for the target phase's certificate now, and when the CA is asked
   * next. `issued`: this pass issued the target phase's certificate. Never
   * throws: ARI only ever moves a renewal, and the lifetime rule stands
   * without it.
   */
  async refresh(spec: CertSpec, log: Logger, opts: { issued?: boolean } = {}): Promise<AriView> {
    const { store, clock, settings } = this.deps;
    const phase = settings.target;
    const issuer = this.deps.issuers[phase];
    try {
      const stored = await this.records.loadStored(spec.name, phase);
      if (!stored || !issuer.renewalInfo || stored.meta.directoryUrl !== issuer.directoryUrl) {
        return {};
      }
      const key = ariKey(spec.name, phase);
      const prev = await this.load(spec.name, phase);
      const subject = ariSubject(stored.meta);
      const asked = this.asked.get(spec.name) === subject.serial;
      if (opts.issued && !asked && this.issued.get(spec.name)?.serial !== subject.serial) {
        const at = new Date(stored.meta.issuedAt);
        this.issued.set(spec.name, {
          serial: subject.serial,
          at: Number.isNaN(at.getTime()) ? clock.now() : at,
        });
      }
      const fresh = this.issued.get(spec.name);
      const issuedAt = fresh?.serial === subject.serial ? fresh.at : undefined;
      const check = ariCheck(prev, subject, { asked, ...(issuedAt && { issuedAt }) }, clock.now());
      if (!check.due) {
        // Not asked yet (issued here): a record left is an older certificate's.
        const checkAt = check.nextCheck.toISOString();
        return asked && prev ? { record: prev, checkAt } : { checkAt };
      }
      const answer = await issuer.renewalInfo(stored.bundle.cert);
      this.asked.set(spec.name, subject.serial);
      this.issued.delete(spec.name);
      if (answer.kind === 'unsupported') {
        this.unsupported.set(spec.name, subject.serial);
        if (prev) await store.delete(key);
        return {};
      }
      this.unsupported.delete(spec.name);
      const update = nextAriRecord(
        prev,
        subject,
        answer,
        clock.now(),
        this.deps.random ?? Math.random,
      );
      await store.store(key, JSON.stringify(update.record, null, 2));
      const { record } = update;
      if (update.warning) {
        log.warn('the CA gave no usable renewal information; the lifetime rule decides', {
          phase,
          serial: subject.serial,
          problem: update.warning,
          nextCheck: record.nextCheck,
        });
      } else if (update.choice === 'drawn') {
        log.info('renewal time drawn from the CA renewal window', {
          phase,
          serial: subject.serial,
          window: record.window,
          renewAt: record.renewAt,
          ...(record.explanationUrl && { explanationUrl: record.explanationUrl }),
          nextCheck: record.nextCheck,
        });
      }
      return { record, checkAt: record.nextCheck };
    } catch (err) {
      log.warn('could not update the renewal information', { phase, error: errorMessage(err) });
      return { failed: true };
    }
  }

  /**
   * For the idle shortcut (steady.ts): until when (ms) `refresh(spec)` would
   * not ask the CA, judged as it would judge now on the records as they
   * are kept now; Infinity when ARI does not apply; undefined when it
   * would ask now (or cannot tell).
   */
  async quietUntil(spec: CertSpec): Promise<number | undefined> {
    const { clock, settings } = this.deps;
    const phase = settings.target;
    const issuer = this.deps.issuers[phase];
    try {
      const stored = await this.records.loadStored(spec.name, phase);
      if (!stored || !issuer.renewalInfo || stored.meta.directoryUrl !== issuer.directoryUrl) {
        return Infinity;
      }
      const prev = await this.load(spec.name, phase);
      const subject = ariSubject(stored.meta);
      const asked = this.asked.get(spec.name) === subject.serial;
      // Asked, and the answer will be `unsupported` again, with no request.
      if (asked && !prev && this.unsupported.get(spec.name) === subject.serial) return Infinity;
      const fresh = this.issued.get(spec.name);
      const issuedAt = fresh?.serial === subject.serial ? fresh.at : undefined;
      const check = ariCheck(prev, subject, { asked, ...(issuedAt && { issuedAt }) }, clock.now());
      return check.due ? undefined : check.nextCheck.getTime();
    } catch {
      return undefined;
    }
  }

  /** Forgets the certificates not in `names` (they left the configuration). */
  retain(names: ReadonlySet<string>): void {
    for (const map of [this.asked, this.issued, this.unsupported]) {
      for (const name of map.keys()) if (!names.has(name)) map.delete(name);
    }
  }

  /** Certificates this tracker remembers something about (asked or issued). */
  get size(): number {
    return new Set([...this.asked.keys(), ...this.issued.keys()]).size;
  }

  load(name: string, phase: AcmePhase): Promise<AriRecord | undefined> {
    return loadAriRecord(this.records.reader, name, phase);
  }
}

/** What the status shows of ARI for one certificate after a refresh. */
export interface AriView {
  /** The record for the certificate served now, when the CA was asked about it. */
  readonly record?: AriRecord;
  /** When the CA is asked next (the daemon wakes for it). */
  readonly checkAt?: string;
  /** The refresh failed: the next pass tries again. */
  readonly failed?: true;
}

/**
 * A stored ARI record, or undefined when there is none or it is corrupt
 * (kept aside; safe default: as if never asked, so the CA is asked again and
 * the lifetime rule decides meanwhile) or cannot be read.
 */
export async function loadAriRecord(
  reader: RecordReader,
  name: string,
  phase: AcmePhase,
): Promise<AriRecord | undefined> {
  return reader.read(ariKey(name, phase), ariKind, { cert: name }).catch(() => undefined);
}

/**
 * The ARI times a decision may use: each phase's, for the serial and the CA
 * it was drawn for.
 */
export async function loadAriChoices(
  store: RecordReader,
  name: string,
  directories: Readonly<Record<AcmePhase, string>>,
): Promise<Partial<Record<AcmePhase, AriChoice>>> {
  const out: Partial<Record<AcmePhase, AriChoice>> = {};
  for (const phase of ['staging', 'production'] as const) {
    const record = await loadAriRecord(store, name, phase);
    const at = record && ariRenewAt(record, { ...record, directoryUrl: directories[phase] });
    if (record && at) out[phase] = { serial: record.serial, renewAt: at };
  }
  return out;
}
