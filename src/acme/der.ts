/**
 * The two X.509 structures the sidecar itself builds, in DER, signed with
 * node:crypto: the CSR of an order (RFC 2986) and the self-signed placeholder
 * certificate (RFC 5280).
 *
 * Why hand-written when @peculiar/x509 (through acme-client's createCsr)
 * does both: `acme-sidecar once` spends its CPU per certificate, and
 * @peculiar/x509 cost 6.9 ms of CPU per CSR and 6.3 ms per placeholder
 * (P-384, the default key type; asn1-schema building and re-parsing its
 * own objects, two WebCrypto key imports each), against 1.4 and 1.5 ms
 * here, most of which is the signature itself (a micro-benchmark of
 * 100 of each, issue 15). About 0.5 s of CPU for 50 certificates.
 * It encodes exactly what these two structures need and parses nothing;
 * test/unit/der.test.ts checks its output with the openssl CLI for every
 * key type, and the e2e tests have Pebble accept the CSRs.
 */
import { createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { SidecarError } from '../domain/errors.js';
import { identifierType } from '../domain/ip-address.js';

// ---- DER primitives (X.690) -------------------------------------------------

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content]);
}

const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const bits = (b: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), b]));
/** [n] EXPLICIT, constructed. */
const explicit = (n: number, content: Buffer): Buffer => tlv(0xa0 | n, content);
const TRUE = Buffer.from([0x01, 0x01, 0xff]);
const NULL = Buffer.from([0x05, 0x00]);

/** A non-negative INTEGER from big-endian bytes, minimally encoded. */
function uint(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  let b = bytes.subarray(i);
  if ((b[0] ?? 0) & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b.length ? b : Buffer.from([0]));
}

function oid(dotted: string): Buffer {
  const [a = 0, b = 0, ...rest] = dotted.split('.').map(Number);
  const out = [a * 40 + b];
  for (const v of rest) {
    const group = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128))
      group.unshift(0x80 | (x & 0x7f));
    out.push(...group);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime until 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '') + 'Z';
  return d.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(digits.slice(2)))
    : tlv(0x18, Buffer.from(digits));
}

// ---- X.509 pieces -----------------------------------------------------------

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  extensionRequest: '1.2.840.113549.1.9.14',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
} as const;

/** A Name of one single-valued RDN per attribute, in order (UTF8String values). */
function name(attrs: readonly (readonly [string, string])[]): Buffer {
  return seq(...attrs.map(([type, value]) => set(seq(oid(type), utf8(value)))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [TRUE] : []), octets(value));
}

/** The 4 or 16 bytes of an IP address in text form. */
export function ipBytes(text: string): Buffer {
  const family = isIP(text);
  if (family === 4) return Buffer.from(text.split('.').map(Number));
  if (family !== 6) throw new SidecarError('CONFIG_INVALID', `not an IP address: ${text}`);
  // An IPv4 tail (::ffff:192.0.2.1) becomes its two 16-bit groups.
  const s = text.replace(
    /(\d+)\.(\d+)\.(\d+)\.(\d+)$/,
    (_m, a: string, b: string, c: string, d: string) =>
      [(+a << 8) | +b, (+c << 8) | +d].map((w) => w.toString(16)).join(':'),
  );
  const [head = '', rest] = s.split('::');
  const words = (part: string) => (part === '' ? [] : part.split(':').map((h) => parseInt(h, 16)));
  const left = words(head);
  const right = rest === undefined ? [] : words(rest);
  const fill = rest === undefined ? [] : new Array<number>(8 - left.length - right.length).fill(0);
  const all = [...left, ...fill, ...right];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

/** subjectAltName (RFC 5280 §4.2.1.6): dNSName [2] or iPAddress [7] (RFC 8738). */
function subjectAltName(names: readonly string[]): Buffer {
  return seq(
    ...names.map((n) =>
      identifierType(n) === 'ip' ? tlv(0x87, ipBytes(n)) : tlv(0x82, Buffer.from(n, 'ascii')),
    ),
  );
}

/** KeyUsage BIT STRING of the given first-byte flags (digitalSignature 0x80, keyEncipherment 0x20). */
function keyUsage(flags: number): Buffer {
  let unused = 0;
  while (unused < 7 && !(flags & (1 << unused))) unused++;
  return tlv(0x03, Buffer.from([unused, flags]));
}

interface Signer {
  key: KeyObject;
  spki: Buffer;
  /** AlgorithmIdentifier of the signature. */
  algorithm: Buffer;
  hash: 'sha256' | 'sha384';
}

/**
 * How a key signs: RSA with SHA-256 (PKCS #1 v1.5), P-256 with SHA-256 and
 * P-384 with SHA-384 (the pairs acme-client and RFC 5758 use).
 */
function signerOf(privkeyPem: string | KeyObject): Signer {
  const key = typeof privkeyPem === 'string' ? createPrivateKey(privkeyPem) : privkeyPem;
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  if (key.asymmetricKeyType === 'rsa') {
    return { key, spki, algorithm: seq(oid(OID.sha256WithRSA), NULL), hash: 'sha256' };
  }
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') {
      return { key, spki, algorithm: seq(oid(OID.ecdsaWithSha256)), hash: 'sha256' };
    }
    if (curve === 'secp384r1') {
      return { key, spki, algorithm: seq(oid(OID.ecdsaWithSha384)), hash: 'sha384' };
    }
  }
  throw new SidecarError(
    'CONFIG_INVALID',
    `unsupported key: ${key.asymmetricKeyType ?? '?'} ${key.asymmetricKeyDetails?.namedCurve ?? ''}`,
  );
}

/** SEQUENCE { tbs, algorithm, BIT STRING signature }: a signed CSR or certificate. */
function signed(tbs: Buffer, s: Signer): Buffer {
  // ECDSA signatures come out as DER Ecdsa-Sig-Value, as X.509 wants.
  return seq(tbs, s.algorithm, bits(sign(s.hash, tbs, s.key)));
}

export function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

/**
 * A PKCS #10 CSR: subject CN (when given), the names as subjectAltName,
 * and keyUsage digitalSignature + keyEncipherment; the fields acme-client's
 * createCsr wrote before.
 */
export function createCsrDer(
  opts: { commonName?: string; altNames: readonly string[] },
  privkey: string | KeyObject,
): Buffer {
  const s = signerOf(privkey);
  const extensions = seq(
    extension(OID.keyUsage, false, keyUsage(0x80 | 0x20)),
    extension(OID.subjectAltName, false, subjectAltName(opts.altNames)),
  );
  const info = seq(
    uint(Buffer.from([0])),
    name(opts.commonName !== undefined ? [[OID.commonName, opts.commonName]] : []),
    s.spki,
    explicit(0, seq(oid(OID.extensionRequest), set(extensions))),
  );
  return signed(info, s);
}

/**
 * A self-signed end-entity certificate: v3, the given serial, subject =
 * issuer, basicConstraints cA=false (critical), keyUsage digitalSignature
 * (critical), extKeyUsage serverAuth, subjectAltName.
 */
export function createSelfSignedDer(
  opts: {
    serial: Buffer;
    subject: readonly (readonly ['CN' | 'O', string])[];
    notBefore: Date;
    notAfter: Date;
    altNames: readonly string[];
  },
  privkey: string | KeyObject,
): Buffer {
  const s = signerOf(privkey);
  const subject = name(
    opts.subject.map(([t, v]) => [t === 'CN' ? OID.commonName : OID.organization, v] as const),
  );
  const tbs = seq(
    explicit(0, uint(Buffer.from([2]))),
    uint(opts.serial),
    s.algorithm,
    subject,
    seq(time(opts.notBefore), time(opts.notAfter)),
    subject,
    s.spki,
    explicit(
      3,
      seq(
        extension(OID.basicConstraints, true, seq()),
        extension(OID.keyUsage, true, keyUsage(0x80)),
        extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
        extension(OID.subjectAltName, false, subjectAltName(opts.altNames)),
      ),
    ),
  );
  return signed(tbs, s);
}
