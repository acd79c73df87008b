/**
 * Why the sidecar acts (or does not). One word per cause, shared by logs,
 * /status and metrics.
 */
export const Reason = {
  /** Nothing is served yet: write a placeholder so nginx can start. */
  Missing: 'Missing',
  /** The placeholder has expired: write a fresh one. */
  PlaceholderExpired: 'PlaceholderExpired',
  /** Production is wanted but these hostnames never passed staging with this CA. */
  StagingFirst: 'StagingFirst',
  /** Staging has succeeded; production is wanted and not issued yet. */
  StagingOnly: 'StagingOnly',
  /** No certificate from the target CA yet. */
  NotIssued: 'NotIssued',
  /** Inside the renewal window. */
  NearingExpiry: 'NearingExpiry',
  Expired: 'Expired',
  /** The certificate's hostnames differ from the ones asked for. */
  DomainsChanged: 'DomainsChanged',
  /** The certificate came from another CA directory than the configured one. */
  IssuerChanged: 'IssuerChanged',
  KeyTypeChanged: 'KeyTypeChanged',
  /** The certificate was ordered under another ACME profile than the one asked for now. */
  ProfileChanged: 'ProfileChanged',
  /** The stored chain or key did not verify. */
  ChainUnverified: 'ChainUnverified',
  /**
   * The store has no valid record of the certificate nginx serves, which our
   * CA issued for these names: it is taken back into the store, no order.
   */
  Adopted: 'Adopted',
  /** A better certificate is stored than the one nginx serves. */
  LiveOutdated: 'LiveOutdated',
  /** An operator asked for a new certificate now (`acme-sidecar renew`). */
  Forced: 'Forced',
  /** Nothing to do. */
  Valid: 'Valid',
} as const;

export type Reason = (typeof Reason)[keyof typeof Reason];

/**
 * Reasons the reconciler records itself, beside the policy's decisions:
 * on a certificate's status and in its log lines.
 */
export const ReconcileReason = {
  /** The last step failed and its retry time has not come yet. */
  Backoff: 'Backoff',
  /**
   * The store holds nothing for the certificate but the platform holds a
   * valid one of ours: the local volume was lost.
   */
  LocalLost: 'LocalLost',
} as const;

export type ReconcileReason = (typeof ReconcileReason)[keyof typeof ReconcileReason];

/**
 * Reconciling the platform's copy of a certificate with the one served
 * locally (see lifecycle/platform-policy.ts).
 */
export const PlatformReason = {
  /** The platform has no certificate of that name. */
  PlatformMissing: 'PlatformMissing',
  /** The platform holds our staging certificate; production is served here. */
  PlatformStaging: 'PlatformStaging',
  /** The platform holds a self-signed placeholder. */
  PlatformSelfSigned: 'PlatformSelfSigned',
  /** The platform's copy has expired or is about to. */
  PlatformExpiring: 'PlatformExpiring',
  /** The platform's copy differs from the one served here. */
  PlatformOutdated: 'PlatformOutdated',
  /** A certificate with that name exists and this sidecar did not create it. */
  NotOurs: 'NotOurs',
  /** The platform keeps its valid copy until a CA-issued one replaces the placeholder. */
  PlatformKept: 'PlatformKept',
  InSync: 'InSync',
  NothingServed: 'NothingServed',
} as const;
export type PlatformReason = (typeof PlatformReason)[keyof typeof PlatformReason];
