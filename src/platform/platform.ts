import type { DiscoveryProblem, PlatformCopy } from '../domain/status.js';
import type { CertSpec, StoredCert } from '../domain/types.js';

export type { DiscoveryProblem, PlatformCopy } from '../domain/status.js';

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
  /** False when certificates only live on disk (nothing to read back or push). */
  readonly holdsCertificates: boolean;
  /**
   * Every certificate asked for now, by every source, in discovery order
   * (DOMAINS first): one name may be asked for by several sources; the
   * Discoverer decides which one gets it (lifecycle/ownership.ts). Throws
   * on failure: never "nothing" on error. `persist: false` (dry runs,
   * check-config): whatever the platform remembers in the store is read,
   * never written.
   */
  discover(opts?: { persist?: boolean }): Promise<Discovery>;
  /**
   * The platform's copy of a certificate, if it has one. Between
   * `beginPass` and `endPass` it may answer from a listing read once per
   * pass (a name pushed in the pass is read afresh).
   */
  read(name: string): Promise<PlatformCopy | undefined>;
  /**
   * Optional, in a pass: the identity of what `read(name)` answers from
   * (the same while the platform's copy is unchanged since an earlier pass,
   * a new one when it may have changed; `null` stands for none there is
   * the same way, as a fixed value), or undefined when it cannot vouch (a
   * name pushed in this pass, no listing). For the idle shortcut
   * (reconcile/steady.ts). A plain value when the platform has it at hand
   * (the pass's listing already read), so that the idle pass checks its
   * certificates without a promise each.
   */
  copyVersion?(name: string): object | null | undefined | Promise<object | null | undefined>;
  /** Optional: a pass starts (the reads that follow may share one listing). */
  beginPass?(): void;
  /** Optional: the pass is over; reads go to the platform again. */
  endPass?(): void;
  /** Give the platform this certificate: update `existing` in place, or create it. */
  push(cert: StoredCert, existing?: PlatformCopy): Promise<void>;
  /**
   * Optional, for platforms whose servers read live/ themselves (Docker):
   * called after every pass with what live/ now serves; makes the servers
   * load it (e.g. SIGHUP to nginx) if it changed since they last did.
   * Throws if a server could not be told; the next pass tries again.
   */
  reload?(serving: readonly ServedCertificate[]): Promise<void>;
  /**
   * Optional: calls `onChange` soon after the platform's hostnames may have
   * changed (Docker's event stream), so a pass can run without waiting for
   * LOOP_TIME. Never throws; reconnects by itself. `close()` stops it.
   */
  watch?(onChange: (why: string) => void): PlatformWatch;
}

/** A certificate as live/ serves it, for `Platform.reload`. */
export interface ServedCertificate {
  readonly name: string;
  /** Upper-case hex. */
  readonly serial: string;
}

export interface PlatformWatch {
  close(): Promise<void>;
}
