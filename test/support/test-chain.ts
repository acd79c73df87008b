// A root and a leaf it issued (ECDSA P-256, valid from an hour ago for a
// day), as PEM, for tests that need a real two-certificate chain.
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

export interface TestChain {
  /** PEM, without a trailing newline. */
  readonly rootPem: string;
  /** PEM, without a trailing newline. */
  readonly leafPem: string;
  /** PKCS#8 PEM, with a trailing newline. */
  readonly leafKeyPem: string;
}

export async function rootAndLeaf(opts: {
  readonly rootName: string;
  readonly subject: string;
  readonly san: { readonly type: 'dns' | 'ip'; readonly value: string };
}): Promise<TestChain> {
  const gen = () =>
    webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
  const [rootKeys, leafKeys] = await Promise.all([gen(), gen()]);
  const notBefore = new Date(Date.now() - 3600_000);
  const notAfter = new Date(Date.now() + 86400_000);
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: opts.rootName,
    notBefore,
    notAfter,
    signingAlgorithm: alg,
    keys: rootKeys,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: opts.subject,
    issuer: root.subject,
    notBefore,
    notAfter,
    signingAlgorithm: alg,
    publicKey: leafKeys.publicKey,
    signingKey: rootKeys.privateKey,
    extensions: [new x509.SubjectAlternativeNameExtension([opts.san])],
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey));
  return {
    rootPem: root.toString('pem'),
    leafPem: leaf.toString('pem'),
    leafKeyPem: `-----BEGIN PRIVATE KEY-----\n${der.toString('base64')}\n-----END PRIVATE KEY-----\n`,
  };
}
