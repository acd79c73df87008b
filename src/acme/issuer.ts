import type { CertBundle, CertSpec, KeyType, Phase } from '../domain/types.js';
import type { RenewalInfoAnswer } from '../lifecycle/ari.js';

export interface IssueOptions {
  /**
   * The certificate (PEM) this order renews, from the same CA: the order
   * then carries its ARI CertID as `replaces` (RFC 9773 section 5), when
   * the CA offers ARI.
   */
  readonly replacing?: string;
}

/** Something that turns a certificate request into a signed certificate. */
export interface Issuer {
  readonly phase: Phase;
  /** The ACME directory URL; '' for the self-signed issuer. */
  readonly directoryUrl: string;
  issue(
    spec: CertSpec,
    keyType: KeyType,
    signal?: AbortSignal,
    opts?: IssueOptions,
  ): Promise<CertBundle>;
  /** The CA's renewalInfo for a certificate it issued (RFC 9773); never throws. */
  renewalInfo?(certPem: string): Promise<RenewalInfoAnswer>;
  /**
   * Does this CA know the certificate as one it issued? Asked of its
   * renewalInfo (RFC 9773: the CertID names its issuer key and serial),
   * whatever ACME_ARI says, since nothing is renewed by the answer. true
   * only on a usable answer; false when it does not know it, cannot say,
   * or offers no renewalInfo. Never throws.
   */
  recognizes?(certPem: string): Promise<boolean>;
}
