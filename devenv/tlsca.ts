// Throwaway certificates made with the openssl CLI:
//  - a CA and a leaf for Pebble's own HTTPS listener (Pebble will not serve
//    its API over plain HTTP), so clients can trust exactly this run's CA;
//  - self-signed placeholders in the certbot-style layout nginx reads
//    (`<certDir>/live/<name>/{fullchain,privkey}.pem`), for tests that need a
//    TLS server before a real certificate exists.
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface ThrowawayCa {
  /** PEM of the CA that signed Pebble's listener certificate: trust this. */
  caPemPath: string;
  caPem: string;
  /** Leaf for localhost, 127.0.0.1 and ::1, with its key (PEM paths). */
  certPath: string;
  keyPath: string;
}

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${e.stderr ?? e.message}`);
  }
}

// P-256 keys: fast to make, and both Go (Pebble) and nginx accept them.
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** Create the CA and Pebble's listener leaf in `dir`. */
export async function createThrowawayCa(dir: string): Promise<ThrowawayCa> {
  await mkdir(dir, { recursive: true });
  const caKey = path.join(dir, 'ca.key');
  const caPemPath = path.join(dir, 'ca.pem');
  const keyPath = path.join(dir, 'pebble-listener.key');
  const certPath = path.join(dir, 'pebble-listener.pem');
  await openssl([
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    caKey,
    '-out',
    caPemPath,
    '-days',
    '7',
    '-subj',
    '/CN=acme-sidecar devenv throwaway CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  // `req -x509 -CA` (OpenSSL >= 3.0) signs the new leaf with the CA in one step.
  await openssl([
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-days',
    '7',
    '-subj',
    '/CN=localhost',
    '-CA',
    caPemPath,
    '-CAkey',
    caKey,
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
    '-addext',
    'basicConstraints=critical,CA:FALSE',
    '-addext',
    'keyUsage=critical,digitalSignature',
    '-addext',
    'extendedKeyUsage=serverAuth',
  ]);
  return { caPemPath, caPem: await readFile(caPemPath, 'utf8'), certPath, keyPath };
}

/**
 * Write a self-signed placeholder at `<certDir>/live/<name>/{fullchain,privkey}.pem`
 * (what the sidecar does before the first issuance, so nginx can start).
 */
export async function writeSelfSignedCert(
  certDir: string,
  name: string,
  serverNames: readonly string[],
): Promise<{ fullchainPath: string; privkeyPath: string }> {
  const dir = path.join(certDir, 'live', name);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const fullchainPath = path.join(dir, 'fullchain.pem');
  const privkeyPath = path.join(dir, 'privkey.pem');
  const first = serverNames[0] ?? name;
  await openssl([
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    privkeyPath,
    '-out',
    fullchainPath,
    '-days',
    '1',
    '-subj',
    `/CN=${first}`,
    '-addext',
    `subjectAltName=${serverNames.map((n) => `DNS:${n}`).join(',') || `DNS:${first}`}`,
  ]);
  return { fullchainPath, privkeyPath };
}

/** Write issued PEMs into the layout nginx reads. */
export async function writeCertFiles(
  certDir: string,
  name: string,
  fullchainPem: string,
  privkeyPem: string,
): Promise<void> {
  const dir = path.join(certDir, 'live', name);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await writeFile(path.join(dir, 'fullchain.pem'), fullchainPem, { mode: 0o644 });
  // Only nginx's master (root) reads the key.
  await writeFile(path.join(dir, 'privkey.pem'), privkeyPem, { mode: 0o600 });
}
