/**
 * DNS-01 (RFC 8555 section 8.4) behind the ChallengeResponder interface: the
 * TXT value goes to `_acme-challenge.<name>` (or where a CNAME there points)
 * through one DnsProvider, and verify() waits until the DNS answers it.
 */
import { errorMessage } from '../../domain/errors.js';
import type { Clock } from '../../lifecycle/clock.js';
import { DNS_RECORDS_PREFIX, dnsRecordKey } from '../../store/keys.js';
import type { CertStore } from '../../store/store.js';
import type { Logger } from '../../util/log.js';
import type { ChallengeResponder } from '../responder.js';
import type { PropagationChecker, PropagationResult } from './checker.js';
import { challengeRecordName } from './propagation.js';
import type { DnsProvider } from './provider.js';

/** What the store keeps of a TXT value in flight. */
interface RecordEntry {
  readonly fqdn: string;
  readonly value: string;
  readonly provider: string;
  readonly createdAt: string;
}

/**
 * In cluster mode another replica may be the leader with an order in flight:
 * a record is a leftover only once it is older than any order can last.
 */
export const CLUSTER_LEFTOVER_AGE_MS = 60 * 60 * 1000;

/**
 * Is a recorded TXT value a leftover to remove at startup? Pure. Alone, every
 * record is (no order runs before the sweep); in a cluster, only old ones.
 */
export function isLeftover(createdAt: string, now: Date, clustered: boolean): boolean {
  if (!clustered) return true;
  const t = Date.parse(createdAt);
  return Number.isNaN(t) || now.getTime() - t >= CLUSTER_LEFTOVER_AGE_MS;
}

export interface DnsResponderOptions {
  readonly provider: DnsProvider;
  readonly checker: PropagationChecker;
  readonly store: CertStore;
  readonly clock: Clock;
  /** Cluster mode: leftovers are only records older than CLUSTER_LEFTOVER_AGE_MS. */
  readonly clustered?: boolean;
  readonly log: Logger;
}

export class DnsResponder implements ChallengeResponder {
  /** Per token: where its value went. */
  private readonly presented = new Map<string, { fqdn: string; value: string }>();
  /** The last propagation wait, for logs and the measurements in docs. */
  lastPropagation?: PropagationResult & { fqdn: string };

  constructor(private readonly opts: DnsResponderOptions) {}

  get providerName(): string {
    return this.opts.provider.name;
  }

  /**
   * `txtValue` is what acme-client's getChallengeKeyAuthorization returns
   * for a dns-01 challenge: already base64url(SHA-256(key authorization)),
   * the TXT value of RFC 8555 section 8.4.
   */
  async present(domain: string, token: string, txtValue: string): Promise<void> {
    const { provider, checker, store, clock, log } = this.opts;
    const fqdn = await checker.recordTarget(challengeRecordName(domain));
    const value = txtValue;
    const entry: RecordEntry = {
      fqdn,
      value,
      provider: provider.name,
      createdAt: clock.now().toISOString(),
    };
    // Recorded before it exists: a crash in between leaves a record whose
    // removal finds nothing, never a TXT value nobody knows about.
    await store.store(dnsRecordKey(fqdn, value), JSON.stringify(entry));
    this.presented.set(token, { fqdn, value });
    await provider.addTxt(fqdn, value);
    log.info('DNS-01 TXT value added', { domain, fqdn, provider: provider.name });
  }

  async verify(domain: string, token: string): Promise<void> {
    const rec = this.presented.get(token);
    if (!rec) return;
    const result = await this.opts.checker.waitUntilAnswered(rec.fqdn, [rec.value]);
    this.lastPropagation = { ...result, fqdn: rec.fqdn };
    this.opts.log.info('DNS-01 TXT value answered by every server', {
      domain,
      fqdn: rec.fqdn,
      servers: result.servers,
      waitedMs: Math.round(result.waitedMs),
    });
  }

  async cleanup(_domain: string, token: string): Promise<void> {
    const rec = this.presented.get(token);
    if (!rec) return;
    await this.remove(rec.fqdn, rec.value);
    this.presented.delete(token);
  }

  private async remove(fqdn: string, value: string): Promise<void> {
    await this.opts.provider.removeTxt(fqdn, value);
    await this.opts.store.delete(dnsRecordKey(fqdn, value));
    this.opts.log.info('DNS-01 TXT value removed', { fqdn, provider: this.opts.provider.name });
  }

  /** At startup: removes the TXT values a previous run recorded and never removed. */
  async sweep(): Promise<string[]> {
    const { store, clock, log } = this.opts;
    const removed: string[] = [];
    for (const name of await store.list(DNS_RECORDS_PREFIX)) {
      const key = `${DNS_RECORDS_PREFIX}/${name}`;
      const raw = await store.load(key);
      let entry: RecordEntry | undefined;
      try {
        entry = raw ? (JSON.parse(raw.toString()) as RecordEntry) : undefined;
      } catch {
        entry = undefined;
      }
      if (!entry || typeof entry.fqdn !== 'string' || typeof entry.value !== 'string') {
        await store.delete(key);
        continue;
      }
      if (!isLeftover(entry.createdAt, clock.now(), this.opts.clustered ?? false)) continue;
      try {
        await this.remove(entry.fqdn, entry.value);
        removed.push(`TXT ${entry.fqdn}`);
      } catch (err) {
        log.warn('could not remove a leftover DNS-01 TXT value; will try at the next start', {
          fqdn: entry.fqdn,
          error: errorMessage(err),
        });
      }
    }
    return removed;
  }

  /** Shutdown: removes every value this process still has out. */
  async cleanupAll(): Promise<void> {
    await Promise.all(
      [...this.presented.keys()].map((t) => this.cleanup('', t).catch(() => undefined)),
    );
  }
}
