import type { CertBundle, CertSpec, KeyType, Phase } from '../domain/types.js';

/** Something that turns a certificate request into a signed certificate. */
export interface Issuer {
  readonly phase: Phase;
  /** The ACME directory URL; '' for the self-signed issuer. */
  readonly directoryUrl: string;
  issue(spec: CertSpec, keyType: KeyType, signal?: AbortSignal): Promise<CertBundle>;
}
