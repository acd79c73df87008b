/**
 * The cluster encryption key file (CLUSTER_ENCRYPTION_KEY_FILE): read by the
 * config schema to validate it at startup and by the etcd store's keyring.
 */

/** Bytes of one AES-256-GCM key. */
export const KEY_BYTES = 32;

/** What a key file must look like, for error messages. */
export const KEY_FILE_FORMAT =
  'expected a file holding a base64-encoded 32-byte key, such as the output of `openssl rand -base64 32` (several keys: one per line, the first is used for writing)';

/**
 * Parses a key file's text: one base64 key per line (blank lines and `#`
 * comments ignored), first key first. Throws a plain message (no key
 * material) on anything else.
 *
 * Base64 text rather than 32 raw bytes: it survives secret stores, env
 * files, `kubectl create secret --from-file` and copy-paste unchanged, and a
 * typo shows up as a wrong length instead of a silently different key.
 */
export function parseKeyFile(text: string): Buffer[] {
  const keys: Buffer[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '' || line.startsWith('#')) continue;
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(line)) {
      throw new Error(`line ${i + 1} is not base64`);
    }
    const key = Buffer.from(line, 'base64');
    if (key.length !== KEY_BYTES) {
      throw new Error(`line ${i + 1} decodes to ${key.length} bytes, not ${KEY_BYTES}`);
    }
    keys.push(key);
  }
  if (keys.length === 0) throw new Error('it holds no key');
  return keys;
}
