/**
 * Shared pieces of the reconciler's unit tests: a logger that records its
 * lines, a static platform, and a staging certificate already in the store.
 */
import { X509Certificate } from 'node:crypto';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import type { CertBundle, CertMeta, CertSpec } from '../../src/domain/types.js';
import type { Clock } from '../../src/lifecycle/clock.js';
import type { Platform } from '../../src/platform/platform.js';
import type { CertStore } from '../../src/store/store.js';
import { storedKey } from '../../src/store/keys.js';
import type { LogFields, Logger } from '../../src/util/log.js';

export interface Line {
  readonly level: string;
  readonly msg: string;
  readonly fields: LogFields;
}

/** Every line logged, at any level; a child's lines carry its fields. */
export function recordingLogger(lines: Line[], base: LogFields = {}): Logger {
  const at =
    (level: string) =>
    (msg: string, fields: LogFields = {}) =>
      lines.push({ level, msg, fields: { ...base, ...fields } });
  return {
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    child: (fields) => recordingLogger(lines, { ...base, ...fields }),
  };
}

/** A platform that discovers `specs` and holds no certificates. */
export function staticPlatform(specs: readonly CertSpec[]): Platform {
  return {
    name: 'static',
    holdsCertificates: false,
    discover: () => Promise.resolve({ specs: [...specs], problems: [] }),
    read: () => Promise.resolve(undefined),
    push: () => Promise.resolve(),
  };
}

/**
 * Stores a certificate for `spec` as the staging CA at `directoryUrl` would
 * have issued it: a self-signed one from `issuedBy`'s time, valid for
 * `days` (the placeholder issuer's default when undefined).
 */
export async function storeStagingCert(opts: {
  readonly store: CertStore;
  readonly spec: CertSpec;
  readonly directoryUrl: string;
  readonly issuedBy: Clock;
  readonly issuedAt: string;
  readonly days?: number;
}): Promise<{ bundle: CertBundle; meta: CertMeta }> {
  const bundle = await new SelfSignedIssuer(opts.issuedBy, opts.days).issue(
    opts.spec,
    'ecdsa-p256',
  );
  const leaf = new X509Certificate(bundle.cert);
  const meta: CertMeta = {
    name: opts.spec.name,
    phase: 'staging',
    domains: opts.spec.domains,
    directoryUrl: opts.directoryUrl,
    keyType: 'ecdsa-p256',
    notBefore: new Date(leaf.validFrom).toISOString(),
    notAfter: new Date(leaf.validTo).toISOString(),
    serial: leaf.serialNumber.toUpperCase(),
    chainVerified: true,
    issuedAt: opts.issuedAt,
  };
  await opts.store.store(storedKey(opts.spec.name, 'staging'), JSON.stringify({ meta, bundle }));
  return { bundle, meta };
}
