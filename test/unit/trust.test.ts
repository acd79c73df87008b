// contextTrusting (src/util/trust.ts): the secure context built for
// ACME_CA_BUNDLE (and the Cattle API's) trusts the extra CA, and adding it
// leaves Node's shared root store, which every other context uses, as it was.
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import * as x509 from '@peculiar/x509';
import { contextTrusting } from '../../src/util/trust.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

async function pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64')}\n-----END PRIVATE KEY-----\n`;
}

/** A root and a leaf for 127.0.0.1 it issued. */
async function rootAndLeaf(): Promise<{ rootPem: string; leafPem: string; leafKeyPem: string }> {
  const gen = () =>
    webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
  const [rootKeys, leafKeys] = await Promise.all([gen(), gen()]);
  const notBefore = new Date(Date.now() - 3600_000);
  const notAfter = new Date(Date.now() + 86400_000);
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=trust test root',
    notBefore,
    notAfter,
    signingAlgorithm: alg,
    keys: rootKeys,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: 'CN=127.0.0.1',
    issuer: root.subject,
    notBefore,
    notAfter,
    signingAlgorithm: alg,
    publicKey: leafKeys.publicKey,
    signingKey: rootKeys.privateKey,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }])],
  });
  return {
    rootPem: root.toString('pem'),
    leafPem: leaf.toString('pem'),
    leafKeyPem: await pem(leafKeys.privateKey),
  };
}

/** Whether a client with `secureContext` trusts the server; the error code if not. */
function handshake(port: number, secureContext: tls.SecureContext): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, secureContext }, () => {
      socket.end();
      resolve('trusted');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('contextTrusting', () => {
  let server: tls.Server;
  let port: number;
  let rootPem: string;
  before(async () => {
    const made = await rootAndLeaf();
    rootPem = made.rootPem;
    server = tls.createServer({ cert: made.leafPem, key: made.leafKeyPem }, (s) => s.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('trusts the extra CA, while the default roots alone do not', async () => {
    assert.equal(await handshake(port, contextTrusting([])), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    assert.equal(await handshake(port, contextTrusting([rootPem])), 'trusted');
  });

  it("leaves Node's shared root store as it was", async () => {
    assert.equal(await handshake(port, contextTrusting([rootPem])), 'trusted');
    assert.equal(
      await handshake(port, tls.createSecureContext()),
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    );
    assert.equal(await handshake(port, contextTrusting([])), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });
});
