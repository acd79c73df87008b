import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/util/log.js';
import { redact, redactDeep, REDACTED_KEY } from '../../src/util/redact.js';

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

describe('util: redactDeep and the logger', () => {
  const UNTERMINATED = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB';

  it('redacts strings at any depth, in arrays, and in an Error, without touching the original', () => {
    const err = Object.assign(new Error(`boom ${EC_KEY}`), { body: `x ${UNTERMINATED}` });
    const original = {
      a: { b: { c: [`k ${KEY}`, 1, null] } },
      err,
      when: new Date(0),
    };
    const out = redactDeep(original) as {
      a: { b: { c: unknown[] } };
      err: Record<string, unknown>;
      when: Date;
    };
    assert.deepEqual(out.a.b.c, ['k [redacted private key]', 1, null]);
    assert.equal(out.err.message, 'boom [redacted private key]');
    assert.equal(out.err.body, 'x [redacted private key]');
    assert.equal(out.err.stack, undefined, 'no stack in a log line');
    assert.equal(out.when, original.when);
    assert.equal(original.a.b.c[0], `k ${KEY}`, 'the caller’s object is unchanged');
  });

  it('ends a cycle instead of looping', () => {
    const o: Record<string, unknown> = { k: UNTERMINATED };
    o.self = o;
    assert.deepEqual(redactDeep(o), { k: REDACTED_KEY, self: '[circular]' });
  });

  for (const format of ['json', 'text'] as const) {
    it(`keeps a key out of a ${format} log line wherever it is nested, even unterminated`, () => {
      let text = '';
      const stream = new Writable({
        write(chunk: Buffer, _enc, cb) {
          text += chunk.toString('utf8');
          cb();
        },
      });
      const log = createLogger({ format, stream });
      log.warn('platform answered', {
        response: { body: { items: [{ cert: `${KEY}` }] } },
        error: new Error(`cat key: ${UNTERMINATED}`),
        top: UNTERMINATED,
      });
      assert.match(text, /platform answered/);
      assert.doesNotMatch(text, /MIGHAgEA|MHcCAQEEIB|PRIVATE KEY-----/, text);
      assert.match(text, /redacted private key/);
    });
  }
});
