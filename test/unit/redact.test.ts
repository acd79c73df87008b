import assert from 'node:assert/strict';
import { redact } from '../../src/util/redact.js';

const KEY =
  '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----';
const EC_KEY = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----';

describe('util: redact', () => {
  const cases: { name: string; input: string; maxLength?: number; want: string }[] = [
    {
      name: 'leaves text without a key as it is',
      input: 'connect ECONNREFUSED',
      want: 'connect ECONNREFUSED',
    },
    {
      name: 'replaces a whole PKCS#8 key block',
      input: `before ${KEY} after`,
      want: 'before [redacted private key] after',
    },
    {
      name: 'replaces an EC key block',
      input: `x\n${EC_KEY}\ny`,
      want: 'x\n[redacted private key]\ny',
    },
    {
      name: 'replaces two key blocks and keeps the certificate between them',
      input: `${KEY}\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n${EC_KEY}`,
      want: '[redacted private key]\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n[redacted private key]',
    },
    {
      name: 'replaces an unterminated key up to the end of the text',
      input: 'cat privkey.pem: -----BEGIN RSA PRIVATE KEY-----\nMIIEow',
      want: 'cat privkey.pem: [redacted private key]',
    },
    {
      name: 'leaves a public key alone',
      input: '-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----',
      want: '-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----',
    },
    { name: 'cuts a long text to its limit, marked', input: 'abcdef', maxLength: 4, want: 'abc…' },
    { name: 'keeps a text at its limit whole', input: 'abcd', maxLength: 4, want: 'abcd' },
    {
      name: 'redacts before cutting, so a cut never leaves part of a key',
      input: `${KEY} tail`,
      maxLength: 30,
      want: '[redacted private key] tail',
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(redact(c.input, c.maxLength), c.want));
  }
});
