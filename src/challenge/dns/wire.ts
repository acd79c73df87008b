/**
 * DNS messages on the wire: one exchange with one server over UDP, and TCP
 * when the answer is truncated (RFC 1035 section 4.2, RFC 7766). Messages are
 * built and read with dns-packet; this module only moves bytes and enforces
 * a timeout, so every caller fails within a bound it chose.
 */
import { createSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { SidecarError } from '../../domain/errors.js';

export interface DnsServer {
  readonly host: string;
  readonly port: number;
}

export function serverLabel(s: DnsServer): string {
  return s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}

/** `host:port` (IPv6 in brackets) or a bare host (port 53). */
export function parseServer(text: string, defaultPort = 53): DnsServer {
  // node:dns getServers() lists an IPv6 resolver on port 53 without brackets.
  if (net.isIPv6(text.trim())) return { host: text.trim(), port: defaultPort };
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m) throw new Error(`not host:port: ${JSON.stringify(text)}`);
  return { host: m[1] ?? m[2] ?? '', port: m[3] ? Number(m[3]) : defaultPort };
}

/** A fresh message id (RFC 5452: unpredictable). */
export function messageId(): number {
  return randomInt(0, 0x10000);
}

function udpExchange(server: DnsServer, msg: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
    const id = msg.readUInt16BE(0);
    const timer = setTimeout(() => {
      sock.close();
      reject(
        new SidecarError(
          'DNS_UNREACHABLE',
          `DNS server ${serverLabel(server)} did not answer within ${timeoutMs} ms`,
          { retryable: true },
        ),
      );
    }, timeoutMs);
    sock.on('error', (err) => {
      clearTimeout(timer);
      sock.close();
      reject(
        new SidecarError('DNS_UNREACHABLE', `DNS server ${serverLabel(server)}: ${err.message}`, {
          retryable: true,
          cause: err,
        }),
      );
    });
    sock.on('message', (data) => {
      // Answers to someone else's id (or spoofed) are ignored, not trusted.
      if (data.length < 12 || data.readUInt16BE(0) !== id) return;
      clearTimeout(timer);
      sock.close();
      resolve(data);
    });
    sock.send(msg, server.port, server.host);
  });
}

function tcpExchange(server: DnsServer, msg: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: server.host, port: server.port });
    let buf = Buffer.alloc(0);
    const fail = (why: string, cause?: unknown): void => {
      sock.destroy();
      reject(
        new SidecarError('DNS_UNREACHABLE', `DNS server ${serverLabel(server)} (TCP): ${why}`, {
          retryable: true,
          ...(cause !== undefined && { cause }),
        }),
      );
    };
    sock.setTimeout(timeoutMs, () => fail(`no answer within ${timeoutMs} ms`));
    sock.on('error', (err) => fail(err.message, err));
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(msg.length);
      sock.write(Buffer.concat([len, msg]));
    });
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        sock.destroy();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
  });
}

/** Sends `msg` and returns the raw answer; over TCP again if UDP's was truncated. */
export async function exchange(server: DnsServer, msg: Buffer, timeoutMs: number): Promise<Buffer> {
  const answer = await udpExchange(server, msg, timeoutMs);
  const flags = answer.readUInt16BE(2);
  if ((flags & dnsPacket.TRUNCATED_RESPONSE) === 0) return answer;
  return tcpExchange(server, msg, timeoutMs);
}

export type QueryType = 'TXT' | 'SOA' | 'NS' | 'CNAME' | 'A' | 'AAAA';

/** One question, recursion desired (a resolver answers it; an authoritative server ignores the bit). */
export async function query(
  server: DnsServer,
  name: string,
  type: QueryType,
  timeoutMs: number,
): Promise<dnsPacket.DecodedPacket> {
  const msg = dnsPacket.encode({
    type: 'query',
    id: messageId(),
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
  });
  const raw = await exchange(server, msg, timeoutMs);
  try {
    return dnsPacket.decode(raw);
  } catch (err) {
    throw new SidecarError(
      'DNS_UNREACHABLE',
      `DNS server ${serverLabel(server)} sent an answer that does not parse`,
      { retryable: true, cause: err },
    );
  }
}

/** TXT strings of one answer record, each record's strings joined (RFC 7208 section 3.3 style). */
export function txtStrings(data: unknown): string {
  const parts = Array.isArray(data) ? data : [data];
  return parts
    .map((p) => (Buffer.isBuffer(p) ? p.toString('utf8') : typeof p === 'string' ? p : ''))
    .join('');
}

/** The answer's RCODE name (`NOERROR`, `NXDOMAIN`, `NOTAUTH`...); dns-packet's typings omit it. */
export function rcodeOf(p: dnsPacket.DecodedPacket): string {
  return (p as dnsPacket.DecodedPacket & { rcode?: string }).rcode ?? 'UNKNOWN';
}

/** A section's records as plain `{ name, type, data }` (OPT pseudo-records have no data). */
export function records(
  section: readonly dnsPacket.Answer[] | undefined,
): { name: string; type: string; data?: unknown }[] {
  return (section ?? []).map((a) => ({
    name: a.name,
    type: a.type,
    ...('data' in a && { data: a.data as unknown }),
  }));
}
