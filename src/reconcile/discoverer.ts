import { errorCode, errorMessage } from '../domain/errors.js';
import type { CertSpec } from '../domain/types.js';
import type { DiscoveryProblem } from '../domain/status.js';
import type { Platform } from '../platform/platform.js';
import type { Logger } from '../util/log.js';

export interface DiscoveryResult {
  readonly specs: readonly CertSpec[];
  readonly problems: readonly DiscoveryProblem[];
  /** Set when the platform could not be read and the last known set is used. */
  readonly error?: { readonly code: string; readonly message: string };
}

/**
 * Discovery that never mistakes a failed read for "no hostnames": when the
 * platform cannot be read (timeout, 5xx, bad JSON, 401, a page failing
 * mid-way), the last successfully discovered set is kept, so nothing stops
 * being renewed (and nothing is ever removed) because of an outage.
 */
export class Discoverer {
  private last: { specs: readonly CertSpec[]; problems: readonly DiscoveryProblem[] } = {
    specs: [],
    problems: [],
  };

  constructor(
    private readonly platform: Platform,
    private readonly log: Logger,
  ) {}

  async discover(): Promise<DiscoveryResult> {
    try {
      const found = await this.platform.discover();
      this.last = found;
      for (const p of found.problems) {
        this.log.warn('hostname skipped', {
          source: p.source,
          value: p.value,
          code: p.code,
          error: p.message,
        });
      }
      return found;
    } catch (err) {
      const error = { code: errorCode(err), message: errorMessage(err) };
      this.log.error('discovery failed; keeping the last known certificates', {
        code: error.code,
        error: error.message,
        kept: this.last.specs.length,
      });
      return { ...this.last, error };
    }
  }
}
