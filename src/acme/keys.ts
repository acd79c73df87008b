import { generateKeyPair } from 'node:crypto';
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
