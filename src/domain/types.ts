/**
 * Domain types shared by every layer. Adapters import these; this module
 * imports nothing from adapters.
 */

/** Where a certificate came from, in order of preference. */
export const PHASES = ['self-signed', 'staging', 'production'] as const;
export type Phase = (typeof PHASES)[number];

/** The CA phases; `self-signed` is the local placeholder. */
export type AcmePhase = Exclude<Phase, 'self-signed'>;

export const KEY_TYPES = ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

/** What the user asked for: one certificate with a name and its hostnames. */
export interface CertSpec {
  /** Certificate name: directory under live/, and its name on the platform. */
  readonly name: string;
  /** Validated, lowercase, punycode hostnames; the first one is the CN. */
  readonly domains: readonly string[];
  /** Where this request came from (e.g. "env:DOMAINS", a service id). */
  readonly source: string;
  /** ACME profile the orders name (domain/profiles.ts); unset: the CA's default. */
  readonly profile?: string;
  /** What chose `profile`, for messages: `ACME_PROFILE` or `<source>:<label>`. */
  readonly profileFrom?: string;
  /** The `io.acme-sidecar.challenge` label; unset: `ACME_CHALLENGE` (a wildcard uses dns-01 unless dns-persist-01 is asked for). */
  readonly challenge?: 'http-01' | 'dns-01' | 'dns-persist-01';
}

/** A certificate with its key and chain, as PEM. */
export interface CertBundle {
  /** Leaf certificate only. */
  readonly cert: string;
  /** Intermediates only (may be empty for self-signed). */
  readonly chain: string;
  /** Leaf followed by intermediates. */
  readonly fullchain: string;
  /** PKCS#8 private key. Secret: never log. */
  readonly privkey: string;
}

/** Facts about a stored certificate, kept beside it (no secrets here). */
export interface CertMeta {
  readonly name: string;
  readonly phase: Phase;
  /** Hostnames on the certificate, sorted. */
  readonly domains: readonly string[];
  /** The ACME directory URL that issued it; '' for self-signed. */
  readonly directoryUrl: string;
  readonly keyType: KeyType;
  /** ISO 8601. */
  readonly notBefore: string;
  readonly notAfter: string;
  /** Upper-case hex, no separators. */
  readonly serial: string;
  /** The leaf/intermediate signatures checked out and the key matches the leaf. */
  readonly chainVerified: boolean;
  readonly issuedAt: string;
  /** The ACME profile the order named; absent when it named none (or before profiles). */
  readonly profile?: string;
}

export interface StoredCert {
  readonly meta: CertMeta;
  readonly bundle: CertBundle;
}

/**
 * Certificates a pass (and `renew --all`) works on at once: an order mostly
 * waits on the CA (validation, the polls' first quarter second), so the
 * wall time of a pass over N new certificates is about N / this many times
 * one order's. `MAX_CONCURRENT_ORDERS`'s default.
 */
export const DEFAULT_CONCURRENCY = 8;
