/**
 * TSIG (RFC 8945): signs a DNS message with a shared secret, as BIND and
 * every RFC 2136 server want for dynamic updates.
 *
 * Written by hand because no well-kept DNS library on the npm registry signs
 * messages: dns-packet (which builds our messages) knows the TSIG type
 * number but has no codec for its rdata and no signing; dns2 and
 * native-dns-packet have neither (checked 2026-12). The part written here is
 * small: the MAC input of section 4.3.3 and the record of section 4.2.
 */
import { createHmac } from 'node:crypto';
import type { TsigAlgorithm } from '../../domain/challenges.js';

/** Node's HMAC hash for each RFC 8945 section 6 algorithm. */
const HASHES: { readonly [A in TsigAlgorithm]: string } = {
  'hmac-sha1.': 'sha1',
  'hmac-sha224.': 'sha224',
  'hmac-sha256.': 'sha256',
  'hmac-sha384.': 'sha384',
  'hmac-sha512.': 'sha512',
};

export interface TsigKey {
  /** Key name, as configured on the server (a trailing dot is optional). */
  readonly name: string;
  readonly algorithm: TsigAlgorithm;
  /** The shared secret, decoded from base64. Secret. */
  readonly secret: Buffer;
}

/** RFC 8945 section 5.2.3: the time window a server accepts, in seconds. */
export const TSIG_FUDGE_SECONDS = 300;
const TYPE_TSIG = 250;
const CLASS_ANY = 255;

/** A domain name in uncompressed wire form, lowercased (RFC 8945 section 4.3.3: canonical). */
export function wireName(name: string): Buffer {
  const labels = name
    .toLowerCase()
    .replace(/\.$/, '')
    .split('.')
    .filter((l) => l !== '');
  const parts: Buffer[] = [];
  for (const label of labels) {
    const b = Buffer.from(label, 'ascii');
    if (b.length > 63) throw new Error(`DNS label longer than 63 octets in ${name}`);
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

function uint48(n: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
}

function uint16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

/**
 * Returns `message` with a TSIG record appended to its additional section
 * (ARCOUNT + 1), per RFC 8945 section 4.3.1 (a request: no prior MAC).
 * `timeSigned` is seconds since the epoch.
 */
export function signMessage(message: Buffer, key: TsigKey, timeSigned: number): Buffer {
  const keyName = wireName(key.name);
  const algorithm = wireName(key.algorithm);
  const time = uint48(Math.floor(timeSigned));
  const fudge = uint16(TSIG_FUDGE_SECONDS);
  const error = uint16(0);
  const otherLen = uint16(0);
  // Section 4.3.3: the TSIG variables, after the message as sent without TSIG.
  const variables = Buffer.concat([
    keyName,
    uint16(CLASS_ANY),
    Buffer.from([0, 0, 0, 0]), // TTL
    algorithm,
    time,
    fudge,
    error,
    otherLen,
  ]);
  const mac = createHmac(HASHES[key.algorithm], key.secret)
    .update(message)
    .update(variables)
    .digest();
  const rdata = Buffer.concat([
    algorithm,
    time,
    fudge,
    uint16(mac.length),
    mac,
    message.subarray(0, 2), // original id
    error,
    otherLen,
  ]);
  const record = Buffer.concat([
    keyName,
    uint16(TYPE_TSIG),
    uint16(CLASS_ANY),
    Buffer.from([0, 0, 0, 0]),
    uint16(rdata.length),
    rdata,
  ]);
  const signed = Buffer.concat([message, record]);
  signed.writeUInt16BE(message.readUInt16BE(10) + 1, 10);
  return signed;
}

/** RFC 8945 section 3 / IANA: the TSIG error codes a server puts in its answer's TSIG. */
export const TSIG_ERRORS: Readonly<Record<number, string>> = {
  16: "BADSIG (the secret does not match the server's)",
  17: 'BADKEY (the server knows no key of that name and algorithm)',
  18: "BADTIME (our clock and the server's differ by more than 5 minutes)",
  22: 'BADTRUNC',
};

/**
 * The error field of the TSIG record in an answer's rdata (`Buffer`, as
 * dns-packet leaves unknown types), or undefined when it cannot be read.
 */
export function tsigErrorOf(rdata: Buffer): number | undefined {
  let i = 0;
  // Algorithm name: uncompressed labels (RFC 8945 section 4.2 forbids compression).
  while (i < rdata.length && rdata[i] !== 0) i += (rdata[i] ?? 0) + 1;
  i += 1 + 6 + 2;
  if (i + 2 > rdata.length) return undefined;
  const macSize = rdata.readUInt16BE(i);
  i += 2 + macSize + 2;
  if (i + 2 > rdata.length) return undefined;
  return rdata.readUInt16BE(i);
}
