/**
 * Values the etcd store writes are sealed with AES-256-GCM under a key every
 * replica is given (CLUSTER_ENCRYPTION_KEY_FILE), so etcd, its backups and
 * anyone who can read it never see a private key in the clear, and nobody
 * who can only write to etcd can plant a value a replica would accept.
 *
 * How load() knows what to do without a `secret` flag: EVERY value carries
 * an envelope, and the envelope says which kind it is.
 *
 * - `secret` values (private keys, account keys, certificate records that
 *   hold a key) are encrypted: kind 'S'.
 * - other values are stored in the clear, so `etcdctl get` stays useful for
 *   certificates and metadata, but authenticated (GCM over an empty
 *   plaintext, i.e. GMAC, with the value as associated data): kind 'P'.
 *
 * load() opens either kind and refuses anything else, including a bare
 * plaintext value written into etcd by hand: a value that is not a valid
 * envelope for exactly this key under one of our keys is an error
 * (STORE_DECRYPT_FAILED), never silently returned. That closes the
 * downgrade where someone with write access to etcd (but not the key)
 * replaces an encrypted private key with a plaintext key they know.
 *
 * Envelope (all integers big-endian):
 *
 *   0   4  magic "ASv1" (format version 1)
 *   4   1  kind: 'S' (0x53) encrypted, 'P' (0x50) authenticated plaintext
 *   5   8  key id: first 8 bytes of HMAC-SHA256(key, "acme-sidecar key id")
 *   13 12  nonce: random 96 bits, fresh for every write
 *   25  n  ciphertext ('S') or the value itself ('P')
 *   25+n 16 GCM tag
 *
 * Associated data = the 25-byte header followed by the full etcd key the
 * value is stored under (cluster prefix included): a sealed value moved to
 * another key or another cluster's prefix, or with its kind flipped, fails
 * authentication. Not covered: replaying an older sealed value of the SAME
 * key (etcd has the history anyway; certificates carry their own expiry).
 *
 * Random 96-bit nonces keep the GCM collision bound (2^-32 after 2^32
 * messages under one key) far beyond what a certificate store writes.
 *
 * Key ids let a replica with the wrong key fail with a clear message, and
 * allow rotation: the key file may hold several keys, one per line; the
 * first seals, every one opens.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { SidecarError } from '../domain/errors.js';
import { KEY_BYTES, parseKeyFile } from '../domain/key-file.js';

const MAGIC = Buffer.from('ASv1', 'ascii');
const KIND_SECRET = 0x53; // 'S'
const KIND_PLAIN = 0x50; // 'P'
const KEY_ID_BYTES = 8;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = MAGIC.length + 1 + KEY_ID_BYTES + NONCE_BYTES;

// The key file's format is shared with the config schema, so it lives in domain/.
export { KEY_FILE_FORMAT } from '../domain/key-file.js';

interface SealingKey {
  readonly id: Buffer;
  readonly key: Buffer;
}

/**
 * The replica's encryption keys. Never logs or prints a key: `describe()`
 * and error messages show key ids only (an HMAC of the key, which reveals
 * nothing about it).
 */
export class Keyring {
  private readonly keys: readonly SealingKey[];

  private constructor(keys: readonly SealingKey[]) {
    this.keys = keys;
  }

  /** Raw 32-byte keys; the first seals. */
  static fromKeys(keys: readonly Buffer[]): Keyring {
    if (keys.length === 0) throw new RangeError('a keyring needs at least one key');
    return new Keyring(
      keys.map((key) => {
        if (key.length !== KEY_BYTES) throw new RangeError(`keys are ${KEY_BYTES} bytes`);
        return { id: keyId(key), key: Buffer.from(key) };
      }),
    );
  }

  /** Parses a key file's text (see `parseKeyFile`); throws a message with no key material. */
  static parse(text: string): Keyring {
    return Keyring.fromKeys(parseKeyFile(text));
  }

  /** Hex id of the key that seals: safe to log. */
  get sealingKeyId(): string {
    return (this.keys[0] as SealingKey).id.toString('hex');
  }

  /**
   * Seals `value` for storage under `etcdKey`: encrypted when `secret`,
   * otherwise authenticated only.
   */
  seal(etcdKey: string, value: Buffer, secret: boolean): Buffer {
    const k = this.keys[0] as SealingKey;
    const header = Buffer.concat([
      MAGIC,
      Buffer.from([secret ? KIND_SECRET : KIND_PLAIN]),
      k.id,
      randomBytes(NONCE_BYTES),
    ]);
    const cipher = createCipheriv(
      'aes-256-gcm',
      k.key,
      header.subarray(HEADER_BYTES - NONCE_BYTES),
    );
    cipher.setAAD(associatedData(header, etcdKey, secret ? undefined : value));
    const body = secret ? Buffer.concat([cipher.update(value), cipher.final()]) : value;
    if (!secret) cipher.final();
    return Buffer.concat([header, body, cipher.getAuthTag()]);
  }

  /**
   * Opens a value read from `etcdKey`. Throws STORE_DECRYPT_FAILED (with the
   * store key, never a value or key) for anything that is not an intact
   * envelope sealed for this key by one of our keys.
   */
  open(etcdKey: string, sealed: Buffer, storeKey: string): Buffer {
    const fail = (why: string): SidecarError =>
      new SidecarError(
        'STORE_DECRYPT_FAILED',
        `cannot open the value of ${JSON.stringify(storeKey)}: ${why}`,
      );
    if (sealed.length < HEADER_BYTES + TAG_BYTES || !sealed.subarray(0, 4).equals(MAGIC)) {
      throw fail(
        'it is not sealed by acme-sidecar (written to etcd by something else, or by a newer version); refusing to use it',
      );
    }
    const kind = sealed[4];
    if (kind !== KIND_SECRET && kind !== KIND_PLAIN) throw fail('unknown envelope kind');
    const id = sealed.subarray(5, 5 + KEY_ID_BYTES);
    const k = this.keys.find((x) => x.id.equals(id));
    if (!k) {
      throw fail(
        `it was sealed with key id ${id.toString('hex')}, but CLUSTER_ENCRYPTION_KEY_FILE holds ${this.keys
          .map((x) => x.id.toString('hex'))
          .join(', ')}: every replica needs the same key file`,
      );
    }
    const header = sealed.subarray(0, HEADER_BYTES);
    const body = sealed.subarray(HEADER_BYTES, sealed.length - TAG_BYTES);
    const decipher = createDecipheriv(
      'aes-256-gcm',
      k.key,
      header.subarray(HEADER_BYTES - NONCE_BYTES),
    );
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    const secret = kind === KIND_SECRET;
    decipher.setAAD(associatedData(header, etcdKey, secret ? undefined : body));
    try {
      if (secret) return Buffer.concat([decipher.update(body), decipher.final()]);
      decipher.final();
      return Buffer.from(body);
    } catch {
      throw fail('authentication failed (the value was altered, or moved from another key)');
    }
  }
}

function keyId(key: Buffer): Buffer {
  return createHmac('sha256', key).update('acme-sidecar key id').digest().subarray(0, KEY_ID_BYTES);
}

/**
 * header || len(etcdKey) || etcdKey [|| plaintext value]. The length
 * prefix keeps key and value apart, so no (key, value) pair can pose as
 * another.
 */
function associatedData(header: Buffer, etcdKey: string, plainValue: Buffer | undefined): Buffer {
  const keyBytes = Buffer.from(etcdKey, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(keyBytes.length);
  return Buffer.concat([header, len, keyBytes, ...(plainValue ? [plainValue] : [])]);
}
