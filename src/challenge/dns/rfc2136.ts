/**
 * RFC 2136 dynamic updates, signed with TSIG (RFC 8945), to one primary
 * server: BIND, Knot, PowerDNS with dnsupdate on, Windows DNS with TSIG...
 */
import dnsPacket from 'dns-packet';
import { SidecarError } from '../../domain/errors.js';
import type { Logger } from '../../util/log.js';
import { CHALLENGE_TTL_SECONDS, type DnsProvider } from './provider.js';
import { signMessage, TSIG_ERRORS, tsigErrorOf, wireName, type TsigKey } from './tsig.js';
import { exchange, messageId, query, rcodeOf, serverLabel, type DnsServer } from './wire.js';

export interface Rfc2136Options {
  readonly server: DnsServer;
  readonly key: TsigKey;
  /** Per exchange. */
  readonly timeoutMs: number;
  /** Seconds since the epoch, for TSIG's time signed (from the injected clock). */
  readonly nowSeconds: () => number;
  readonly log: Logger;
}

/** RFC 2136 section 1.1 / 2.4: class NONE marks "delete this RR from an RRset". */
const CLASS_NONE = 254;

export class Rfc2136Provider implements DnsProvider {
  readonly name = 'rfc2136';

  constructor(private readonly opts: Rfc2136Options) {}

  addTxt(fqdn: string, value: string): Promise<void> {
    return this.update(fqdn, value, 'add');
  }

  removeTxt(fqdn: string, value: string): Promise<void> {
    return this.update(fqdn, value, 'delete');
  }

  /**
   * The zone that holds `fqdn`: the owner of the SOA the primary answers
   * for it (in the answer for the apex, in the authority section below it).
   */
  async zoneOf(fqdn: string): Promise<string> {
    const { server, timeoutMs } = this.opts;
    const answer = await query(server, fqdn, 'SOA', timeoutMs);
    const soa = [...(answer.answers ?? []), ...(answer.authorities ?? [])].find(
      (r) => r.type === 'SOA',
    );
    if (!soa) {
      throw new SidecarError(
        'DNS_UPDATE_REFUSED',
        `RFC2136_NAMESERVER ${serverLabel(server)} is not authoritative for ${fqdn} (no SOA in its answer, rcode ${rcodeOf(answer)})`,
      );
    }
    return soa.name.replace(/\.$/, '');
  }

  /**
   * One UPDATE (RFC 2136 section 2): zone section = the zone's SOA, no
   * prerequisites, one RR in the update section. Adding an RR adds it to
   * its set (section 3.4.2.2); class NONE deletes that one RR only
   * (section 2.5.4), never the whole set.
   */
  private async update(fqdn: string, value: string, op: 'add' | 'delete'): Promise<void> {
    const { server, key, timeoutMs, log } = this.opts;
    const zone = await this.zoneOf(fqdn);
    const id = messageId();
    const unsigned = dnsPacket.encode({
      type: 'query',
      id,
      // The opcode sits in bits 11-14 of the flags (RFC 1035 section 4.1.1).
      flags: 5 << 11,
      questions: [{ name: zone, type: 'SOA', class: 'IN' }],
      authorities: [
        {
          name: fqdn,
          type: 'TXT',
          class: 'IN',
          ttl: op === 'add' ? CHALLENGE_TTL_SECONDS : 0,
          data: value,
        },
      ],
    });
    if (op === 'delete') {
      // dns-packet only writes the classes IN, CS, CH, HS and ANY, so the RR
      // is encoded as IN and its class patched to NONE. It compresses no
      // names, so the class is right after header, zone section, owner and type.
      const at = 12 + wireName(zone).length + 4 + wireName(fqdn).length + 2;
      unsigned.writeUInt16BE(CLASS_NONE, at);
    }
    const signed = signMessage(unsigned, key, this.opts.nowSeconds());
    const raw = await exchange(server, signed, timeoutMs);
    const answer = dnsPacket.decode(raw);
    const rcode = rcodeOf(answer);
    if (rcode === 'NOERROR') {
      log.debug('RFC 2136 update applied', { op, fqdn, zone, server: serverLabel(server) });
      return;
    }
    const tsig = (answer.additionals ?? []).find((r) => r.type === 'TSIG') as
      { data?: unknown } | undefined;
    const tsigError = Buffer.isBuffer(tsig?.data) ? tsigErrorOf(tsig.data) : undefined;
    const why =
      tsigError && TSIG_ERRORS[tsigError]
        ? `TSIG ${TSIG_ERRORS[tsigError]}`
        : rcode === 'REFUSED'
          ? 'the server refused it (is the key allowed to update this name? see update-policy)'
          : rcode === 'NOTAUTH'
            ? 'the server rejected the TSIG signature (check RFC2136_TSIG_KEY, RFC2136_TSIG_SECRET and RFC2136_TSIG_ALGORITHM)'
            : 'the server did not apply it';
    throw new SidecarError(
      'DNS_UPDATE_REFUSED',
      `RFC 2136 ${op} of TXT ${fqdn} in zone ${zone} at ${serverLabel(server)} with key ${key.name}: ${rcode}, ${why}`,
    );
  }
}
