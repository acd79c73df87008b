import { generateKeyPair, webcrypto } from 'node:crypto';
import { promisify } from 'node:util';
import type { KeyType } from '../domain/types.js';

const generate = promisify(generateKeyPair);

/** A new private key of the given type, as PKCS#8 PEM. */
export async function generatePrivateKey(keyType: KeyType): Promise<string> {
  if (keyType.startsWith('ecdsa-')) {
    const namedCurve = keyType === 'ecdsa-p256' ? 'P-256' : 'P-384';
    const { privateKey } = await generate('ec', {
      namedCurve,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    return privateKey;
  }
  const modulusLength = Number(keyType.slice('rsa-'.length));
  const { privateKey } = await generate('rsa', {
    modulusLength,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return privateKey;
}

export type SigningAlgorithm =
  | { name: 'ECDSA'; namedCurve: 'P-256' | 'P-384'; hash: 'SHA-256' | 'SHA-384' }
  | { name: 'RSASSA-PKCS1-v1_5'; hash: 'SHA-256' };

export function signingAlgorithm(keyType: KeyType): SigningAlgorithm {
  switch (keyType) {
    case 'ecdsa-p256':
      return { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    case 'ecdsa-p384':
      return { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' };
    default:
      return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  }
}

/** Imports a PKCS#8 PEM key into WebCrypto (what @peculiar/x509 signs with). */
export async function importKeyPair(
  pem: string,
  keyType: KeyType,
): Promise<{ privateKey: webcrypto.CryptoKey; publicKey: webcrypto.CryptoKey }> {
  const { createPrivateKey, createPublicKey } = await import('node:crypto');
  const alg = signingAlgorithm(keyType);
  const priv = createPrivateKey(pem);
  const pkcs8 = priv.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(priv).export({ type: 'spki', format: 'der' });
  const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, alg, true, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('spki', spki, alg, true, ['verify']);
  return { privateKey, publicKey };
}
