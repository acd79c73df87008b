/**
 * Asks DNS servers whether a TXT value is there yet: every authoritative
 * server of the zone (found through SOA and NS, as lego does), or the
 * DNS_RESOLVERS list when it is set. The decision is propagation.ts's.
 */
import { SidecarError, errorMessage } from '../../domain/errors.js';
import type { Logger } from '../../util/log.js';
import { waitFor, type Sleep } from '../../util/retry.js';
import {
  followCnames,
  propagationVerdict,
  zoneFromSoaAnswer,
  type PropagationVerdict,
  type ServerAnswer,
} from './propagation.js';
import { query, rcodeOf, records, serverLabel, txtStrings, type DnsServer } from './wire.js';

export interface PropagationCheckerOptions {
  /** DNS_RESOLVERS: ask these, not the zone's authoritative servers. */
  readonly resolvers?: readonly DnsServer[];
  /**
   * The resolvers that find the zone's servers when `resolvers` is unset:
   * DNS_BOOTSTRAP_RESOLVERS, else the system's.
   */
  readonly bootstrap: () => readonly DnsServer[];
  /**
   * DNS_AUTHORITATIVE_PORT: the port each authoritative server is asked on.
   * NS and A records carry no port, so it cannot come from the DNS. Default 53.
   */
  readonly authoritativePort?: number;
  readonly timeoutMs: number;
  readonly intervalMs: number;
  /** Per query. Default 2000. */
  readonly queryTimeoutMs?: number;
  readonly log: Logger;
  /** Monotonic ms. Default performance.now. */
  readonly now?: () => number;
  readonly sleep?: Sleep;
}

export interface PropagationResult {
  readonly waitedMs: number;
  readonly servers: readonly string[];
  readonly rounds: number;
}

export class PropagationChecker {
  constructor(private readonly opts: PropagationCheckerOptions) {}

  private get queryTimeoutMs(): number {
    return this.opts.queryTimeoutMs ?? 2000;
  }

  /** The first resolver to ask for CNAMEs, SOA and NS. */
  private resolver(): DnsServer {
    const r = this.opts.resolvers?.[0] ?? this.opts.bootstrap()[0];
    if (!r) {
      throw new SidecarError(
        'DNS_UNREACHABLE',
        'no DNS resolver to ask: set DNS_RESOLVERS (host:port) or configure the system resolver',
        { retryable: true },
      );
    }
    return r;
  }

  /**
   * Where the TXT for `name` must be written: `name` itself, or the end of
   * the CNAME chain on it (`_acme-challenge.example.com CNAME
   * x.validation.example.net`, the acme-dns pattern). RFC 8555 section 8.4
   * validators follow it.
   */
  async recordTarget(name: string): Promise<string> {
    const answer = await query(this.resolver(), name, 'CNAME', this.queryTimeoutMs);
    const first = followCnames(name, records(answer.answers));
    if (first === name.toLowerCase()) return first;
    // The resolver may have given only the first link: ask again from there.
    const rest = await query(this.resolver(), first, 'CNAME', this.queryTimeoutMs);
    return followCnames(first, records(rest.answers));
  }

  /** The servers to ask: DNS_RESOLVERS, else every authoritative server of the zone. */
  async servers(fqdn: string): Promise<DnsServer[]> {
    if (this.opts.resolvers && this.opts.resolvers.length > 0) return [...this.opts.resolvers];
    const r = this.resolver();
    const t = this.queryTimeoutMs;
    const soa = await query(r, fqdn, 'SOA', t);
    const zone = zoneFromSoaAnswer(records(soa.answers), records(soa.authorities));
    if (!zone) {
      throw new SidecarError(
        'DNS_UNREACHABLE',
        `${serverLabel(r)} names no zone (SOA) for ${fqdn}: ${rcodeOf(soa)}`,
        { retryable: true },
      );
    }
    const ns = await query(r, zone, 'NS', t);
    const hosts = records(ns.answers)
      .filter((a) => a.type === 'NS' && typeof a.data === 'string')
      .map((a) => a.data as string);
    const servers: DnsServer[] = [];
    for (const host of hosts) {
      const a = await query(r, host, 'A', t);
      for (const rec of records(a.answers)) {
        if (rec.type === 'A' && typeof rec.data === 'string')
          servers.push({ host: rec.data, port: this.opts.authoritativePort ?? 53 });
      }
    }
    if (servers.length === 0) {
      throw new SidecarError(
        'DNS_UNREACHABLE',
        `no address for the name servers of zone ${zone} (NS: ${hosts.join(', ') || 'none'})`,
        { retryable: true },
      );
    }
    return servers;
  }

  /** One round: what each server answers for TXT at `fqdn` now. */
  async ask(servers: readonly DnsServer[], fqdn: string): Promise<ServerAnswer[]> {
    return Promise.all(
      servers.map(async (s): Promise<ServerAnswer> => {
        const server = serverLabel(s);
        try {
          const answer = await query(s, fqdn, 'TXT', this.queryTimeoutMs);
          const values = records(answer.answers)
            .filter((a) => a.type === 'TXT' && a.name.replace(/\.$/, '').toLowerCase() === fqdn)
            .map((a) => txtStrings(a.data));
          const rcode = rcodeOf(answer);
          return rcode === 'NOERROR' ? { server, values } : { server, values, problem: rcode };
        } catch (err) {
          return { server, problem: errorMessage(err) };
        }
      }),
    );
  }

  /**
   * Waits until every server answers every value at `fqdn`, polling every
   * DNS_POLLING_INTERVAL, for at most DNS_PROPAGATION_TIMEOUT.
   */
  async waitUntilAnswered(
    fqdn: string,
    values: readonly string[],
    signal?: AbortSignal,
  ): Promise<PropagationResult> {
    const now = this.opts.now ?? (() => performance.now());
    const started = now();
    const servers = await this.servers(fqdn);
    let last: PropagationVerdict = { kind: 'Waiting', missing: [] };
    const rounds = await waitFor(
      async (n) => {
        const answers = await this.ask(servers, fqdn);
        // The deadline is waitFor's; the verdict decides only "all there".
        last = propagationVerdict(values, answers, now() - started, this.opts.timeoutMs);
        if (last.kind === 'Propagated') return n;
        this.opts.log.debug('TXT record not answered everywhere yet', {
          fqdn,
          missing: last.missing,
        });
        return undefined;
      },
      {
        intervalMs: this.opts.intervalMs,
        timeout: {
          ms: this.opts.timeoutMs,
          startedAt: started,
          error: () =>
            new SidecarError(
              'DNS_PROPAGATION_TIMEOUT',
              `TXT ${fqdn} was not answered by every server within DNS_PROPAGATION_TIMEOUT (${Math.round(this.opts.timeoutMs / 1000)} s); missing: ${last.kind === 'Propagated' ? '' : last.missing.join(', ')}`,
              { retryable: true },
            ),
        },
        ...(signal && { signal }),
        ...(this.opts.sleep && { sleep: this.opts.sleep }),
        now,
      },
    );
    return { waitedMs: now() - started, servers: servers.map(serverLabel), rounds };
  }
}
