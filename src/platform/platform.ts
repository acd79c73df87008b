import type { CertMeta, CertSpec, StoredCert } from '../domain/types.js';

/** A hostname or label the platform handed us that we could not use. */
export interface DiscoveryProblem {
  readonly source: string;
  readonly value: string;
  readonly code: string;
  readonly message: string;
}

export interface Discovery {
  readonly specs: readonly CertSpec[];
  readonly problems: readonly DiscoveryProblem[];
}

/**
 * The container platform: where hostnames come from and where certificates
 * go so its load balancers serve them.
 */
export interface Platform {
  readonly name: string;
  /** Every certificate wanted now. Throws on failure: never "nothing" on error. */
  discover(): Promise<Discovery>;
  /** The platform's copy of a certificate, if it has one. */
  read(name: string): Promise<CertMeta | undefined>;
  /** Give the platform this certificate (create or update in place). */
  push(cert: StoredCert): Promise<void>;
}
