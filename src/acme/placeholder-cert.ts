/**
 * The self-signed placeholder certificate in DER, written by hand with
 * node:crypto signing it.
 *
 * Why not @peculiar/x509 (which acme-client uses, and this file did): loading
 * it (with asn1js, tsyringe, reflect-metadata and nine @peculiar/asn1-*
 * packages) is 25 to 40 ms of CPU, and the placeholder is written before the
 * first ACME order, which issue 15 wants 300 ms after process start
 * (`npx tsx scripts/bench-first-order.ts --cpu-prof DIR`). This certificate
 * is one fixed shape: X.509 v3, the same name as subject and issuer,
 * basicConstraints (critical, not a CA), keyUsage digitalSignature
 * (critical), extKeyUsage serverAuth and the subjectAltName of every
 * hostname and IP address. test/unit/placeholder-cert.test.ts checks it with
 * Node's X509Certificate, OpenSSL and @peculiar/x509.
 */
import { createPublicKey, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import type { KeyType } from '../domain/types.js';

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One DER element: tag, length, contents. */
function tlv(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
}

const sequence = (...c: Buffer[]): Buffer => tlv(0x30, ...c);

function oid(dotted: string): Buffer {
  const [a = 0, b = 0, ...rest] = dotted.split('.').map(Number);
  const out = [40 * a + b];
  for (const arc of rest) {
    const base128: number[] = [];
    for (let v = arc; ; v = Math.floor(v / 128)) {
      base128.unshift((v % 128) | (base128.length ? 0x80 : 0));
      if (v < 128) break;
    }
    out.push(...base128);
  }
  return tlv(0x06, Buffer.from(out));
}

/** A non-negative INTEGER from big-endian bytes, minimally encoded. */
function unsignedInteger(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const trimmed = bytes.subarray(i);
  return tlv(0x02, (trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

/** RFC 5280 section 4.1.2.5: UTCTime through 2049, GeneralizedTime after. */
function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z';
  const year = d.getUTCFullYear();
  return year >= 1950 && year < 2050
    ? tlv(0x17, Buffer.from(digits.slice(2), 'ascii'))
    : tlv(0x18, Buffer.from(digits, 'ascii'));
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** A DirectoryString: PrintableString when it can be, else UTF8String. */
function directoryString(s: string): Buffer {
  return PRINTABLE.test(s) ? tlv(0x13, Buffer.from(s, 'ascii')) : tlv(0x0c, Buffer.from(s, 'utf8'));
}

/** An IPv4 or IPv6 address as the 4 or 16 bytes of an iPAddress name. */
export function ipBytes(address: string): Buffer {
  if (isIP(address) === 4) return Buffer.from(address.split('.').map(Number));
  if (isIP(address) !== 6) throw new Error(`not an IP address: ${address}`);
  let text = address;
  const tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (v4) {
    tail.push(...v4.split('.').map(Number));
    text = text.slice(0, -v4.length) + '0:0';
  }
  const [head = '', rest] = text.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  if (tail.length) Buffer.from(tail).copy(out, 12);
  return out;
}

function signatureAlgorithm(keyType: KeyType): { id: Buffer; hash: string } {
  switch (keyType) {
    case 'ecdsa-p256':
      return { id: sequence(oid('1.2.840.10045.4.3.2')), hash: 'sha256' };
    case 'ecdsa-p384':
      return { id: sequence(oid('1.2.840.10045.4.3.3')), hash: 'sha384' };
    default:
      return { id: sequence(oid('1.2.840.113549.1.1.11'), tlv(0x05)), hash: 'sha256' };
  }
}

export interface PlaceholderFields {
  /** Positive serial number, big-endian. */
  readonly serial: Buffer;
  readonly commonName: string;
  readonly organization: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Hostnames and IP addresses, in order. */
  readonly names: readonly { type: 'dns' | 'ip'; value: string }[];
}

/** The self-signed certificate, as PEM (no newline after its END line). */
export function placeholderCertificate(
  fields: PlaceholderFields,
  privateKey: KeyObject,
  keyType: KeyType,
): string {
  const alg = signatureAlgorithm(keyType);
  const name = sequence(
    tlv(0x31, sequence(oid('2.5.4.3'), directoryString(fields.commonName))),
    tlv(0x31, sequence(oid('2.5.4.10'), directoryString(fields.organization))),
  );
  const TRUE = tlv(0x01, Buffer.from([0xff]));
  const extension = (id: string, critical: boolean, value: Buffer) =>
    sequence(oid(id), ...(critical ? [TRUE] : []), tlv(0x04, value));
  const san = sequence(
    ...fields.names.map((n) =>
      n.type === 'ip' ? tlv(0x87, ipBytes(n.value)) : tlv(0x82, Buffer.from(n.value, 'ascii')),
    ),
  );
  const tbs = sequence(
    tlv(0xa0, unsignedInteger(Buffer.from([2]))),
    unsignedInteger(fields.serial),
    alg.id,
    name,
    sequence(time(fields.notBefore), time(fields.notAfter)),
    name,
    createPublicKey(privateKey).export({ type: 'spki', format: 'der' }),
    tlv(
      0xa3,
      sequence(
        extension('2.5.29.19', true, sequence()),
        // digitalSignature: bit 0, in a BIT STRING with 7 unused bits.
        extension('2.5.29.15', true, tlv(0x03, Buffer.from([0x07, 0x80]))),
        extension('2.5.29.37', false, sequence(oid('1.3.6.1.5.5.7.3.1'))),
        extension('2.5.29.17', false, san),
      ),
    ),
  );
  const signature = sign(alg.hash, tbs, privateKey);
  const der = sequence(tbs, alg.id, tlv(0x03, Buffer.from([0]), signature));
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----`;
}
