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
  /** The stored chain or key did not verify. */
  ChainUnverified: 'ChainUnverified',
  /** A better certificate is stored than the one nginx serves. */
  LiveOutdated: 'LiveOutdated',
  /** An operator asked for a new certificate now (`acme-sidecar renew`). */
  Forced: 'Forced',
  /** Nothing to do. */
  Valid: 'Valid',
} as const;

export type Reason = (typeof Reason)[keyof typeof Reason];
