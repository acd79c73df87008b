// No OCSP Must-Staple and no OCSP fetches (issue 12, item 5): Let's Encrypt
// turned its OCSP responders off on 2025-08-06 and refuses Must-Staple
// orders. The CSR the issuer sends carries no TLS Feature extension
// (RFC 7633), nothing in src/ fetches OCSP, and the nginx templates do not
// staple.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOrderCsr } from '../../src/acme/csr.js';
import { generatePrivateKey } from '../../src/acme/keys.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** DER of an OID's value bytes, as it appears inside any extension. */
const TLS_FEATURE_OID = Buffer.from([0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x18]); // 1.3.6.1.5.5.7.1.24
const SAN_OID = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x11]); // 2.5.29.17

function derOf(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

/** Does this CSR ask for OCSP Must-Staple (a TLS Feature extension)? */
function asksMustStaple(csrPem: string): boolean {
  return derOf(csrPem).includes(TLS_FEATURE_OID);
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

describe('no OCSP Must-Staple, no OCSP fetches', () => {
  it('the check sees Must-Staple in a CSR that asks for it (openssl tlsfeature = status_request)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'must-staple-'));
    try {
      const key = join(dir, 'k.pem');
      execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
      const csr = execFileSync('openssl', [
        'req',
        '-new',
        '-key',
        key,
        '-subj',
        '/CN=a.example.com',
        '-addext',
        'subjectAltName = DNS:a.example.com',
        '-addext',
        'tlsfeature = status_request',
      ]).toString();
      assert.equal(asksMustStaple(csr), true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const keyType of ['ecdsa-p256', 'rsa-2048'] as const) {
    it(`the CSR of an order (${keyType}) asks for its hostnames and not for Must-Staple`, async () => {
      const key = await generatePrivateKey(keyType);
      const csr = (await createOrderCsr(['a.example.com', 'www.a.example.com'], key)).toString();
      assert.ok(
        derOf(csr).includes(SAN_OID),
        'the CSR has no subjectAltName: the check reads nothing',
      );
      assert.equal(asksMustStaple(csr), false);
    });
  }

  it('src/ neither fetches OCSP nor asks for Must-Staple', () => {
    // Code only: comments may say why there is none.
    const pattern =
      /ocsp|must-?staple|status_request|tlsfeature|1\.3\.6\.1\.5\.5\.7\.(1\.24|48\.1)/i;
    const hits = filesUnder(join(ROOT, 'src'))
      .filter((f) => f.endsWith('.ts'))
      .flatMap((f) =>
        readFileSync(f, 'utf8')
          .split('\n')
          .map((line, i) => ({ f, i, line }))
          .filter(({ line }) => !/^\s*(\*|\/\/|\/\*)/.test(line) && pattern.test(line)),
      )
      .map(({ f, i, line }) => `${f}:${i + 1}: ${line.trim()}`);
    assert.deepEqual(hits, []);
  });

  it('the nginx templates do not staple OCSP responses', () => {
    for (const f of filesUnder(join(ROOT, 'nginx'))) {
      assert.doesNotMatch(readFileSync(f, 'utf8'), /^\s*ssl_stapling\s+on/m, f);
    }
  });
});
