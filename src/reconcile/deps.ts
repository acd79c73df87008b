import type { Issuer } from '../acme/issuer.js';
import type { LiveTarget } from '../domain/status.js';
import type { AcmePhase, KeyType, Phase } from '../domain/types.js';
import type { HookRunner } from '../hooks/hooks.js';
import type { Clock } from '../lifecycle/clock.js';
import type { Platform } from '../platform/platform.js';
import type { RecordReader } from '../store/records.js';
import type { CertStore } from '../store/store.js';
import type { Logger } from '../util/log.js';
import type { RateBudget } from './budget.js';

export interface ReconcilerSettings {
  readonly target: AcmePhase;
  readonly keyType: KeyType;
  /** ACME_PROFILE: the profile of every certificate no label gives one. */
  readonly profile?: string;
  readonly renewBeforeDays?: number;
  readonly directories: Readonly<Record<AcmePhase, string>>;
  /** Certificates worked on at once (`MAX_CONCURRENT_ORDERS`); default DEFAULT_CONCURRENCY. */
  readonly concurrency?: number;
  /**
   * Other configuration a failure may depend on (account email, EAB key
   * id): a retry schedule made under other values does not apply.
   */
  readonly accountContext?: string;
}

/** What the reconciler and its parts (records, actions, retry schedule) are given. */
export interface ReconcilerDeps {
  /** Run after a certificate changes in live/ (command, webhook, combined PEM). */
  readonly hooks?: HookRunner;
  /** The CA rate-limit budget; none means unlimited. */
  readonly budget?: RateBudget;
  /** Told of every failed step (metrics). */
  readonly onFailure?: (name: string, code: string) => void;
  readonly store: CertStore;
  /**
   * Reads and validates every record (a corrupt one is kept aside and
   * reported); shared with the issuers so one certificate's status hears of
   * all its records. Made from `store` when not given.
   */
  readonly records?: RecordReader;
  readonly live: LiveTarget;
  readonly issuers: Readonly<Record<Phase, Issuer>>;
  readonly platform: Platform;
  readonly clock: Clock;
  readonly log: Logger;
  readonly settings: ReconcilerSettings;
  readonly random?: () => number;
}
