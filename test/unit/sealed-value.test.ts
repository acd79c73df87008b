// The envelope every etcd value is stored in (src/store/sealed-value.ts):
// round trips, and every way a stored value could be forged, moved, altered
// or opened with the wrong key.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { errorCode } from '../../src/domain/errors.js';
import { Keyring } from '../../src/store/sealed-value.js';

const K = '/acme-sidecar/c1/kv/certs/a/production.json';

function ring(): { ring: Keyring; b64: string } {
  const b64 = randomBytes(32).toString('base64');
  return { ring: Keyring.parse(`${b64}\n`), b64 };
}

function refused(fn: () => unknown, why: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.equal(errorCode(err), 'STORE_DECRYPT_FAILED');
    assert.match((err as Error).message, why);
    return true;
  });
}

describe('sealed values', () => {
  const { ring: r } = ring();

  it('opens what it sealed, secret or not, including empty values', () => {
    for (const secret of [true, false]) {
      for (const v of [Buffer.alloc(0), Buffer.from('x'), randomBytes(5000)]) {
        assert.deepEqual(r.open(K, r.seal(K, v, secret), 'k'), v);
      }
    }
  });

  it('encrypts secrets and leaves other values readable', () => {
    const v = Buffer.from('-----BEGIN PRIVATE KEY-----abc');
    assert.ok(!r.seal(K, v, true).includes(v));
    assert.ok(r.seal(K, v, false).includes(v));
  });

  it('uses a fresh nonce for every write', () => {
    const v = Buffer.from('same');
    assert.notDeepEqual(r.seal(K, v, true), r.seal(K, v, true));
  });

  it('refuses a value moved to another key', () => {
    for (const secret of [true, false]) {
      const sealed = r.seal(K, Buffer.from('v'), secret);
      refused(() => r.open(K.replace('/a/', '/b/'), sealed, 'k'), /authentication failed/);
    }
  });

  it('refuses any single flipped bit, in the header, body or tag', () => {
    const sealed = r.seal(K, Buffer.from('private key'), true);
    for (let i = 0; i < sealed.length; i++) {
      const bad = Buffer.from(sealed);
      bad[i] = (bad[i] ?? 0) ^ 0x01;
      assert.throws(
        () => r.open(K, bad, 'k'),
        (err: unknown) => {
          assert.equal(errorCode(err), 'STORE_DECRYPT_FAILED', `byte ${i}`);
          return true;
        },
      );
    }
  });

  it('refuses a secret re-labelled as a plain value, and the reverse', () => {
    const s = r.seal(K, Buffer.from('v'), true);
    s[4] = 0x50; // 'P'
    refused(() => r.open(K, s, 'k'), /authentication failed/);
    const p = r.seal(K, Buffer.from('v'), false);
    p[4] = 0x53; // 'S'
    refused(() => r.open(K, p, 'k'), /authentication failed/);
  });

  it('refuses plaintext, truncated and foreign values', () => {
    refused(() => r.open(K, Buffer.from('-----BEGIN PRIVATE KEY-----'), 'k'), /not sealed/);
    refused(() => r.open(K, Buffer.alloc(0), 'k'), /not sealed/);
    refused(() => r.open(K, r.seal(K, Buffer.from('v'), true).subarray(0, 30), 'k'), /./);
  });

  it('names both key ids, never a key, when the key differs', () => {
    const other = ring();
    const sealed = r.seal(K, Buffer.from('v'), true);
    refused(
      () => other.ring.open(K, sealed, 'certs/a/production.json'),
      new RegExp(`sealed with key id ${r.sealingKeyId}.*holds ${other.ring.sealingKeyId}`),
    );
    try {
      other.ring.open(K, sealed, 'k');
    } catch (err) {
      assert.ok(!(err as Error).message.includes(other.b64));
    }
  });

  it('opens values of every key in the file, and seals with the first', () => {
    const oldKey = ring();
    const newKey = ring();
    const both = Keyring.parse(`# rotated\n${newKey.b64}\n\n${oldKey.b64}\n`);
    const sealedOld = oldKey.ring.seal(K, Buffer.from('old'), true);
    assert.equal(both.open(K, sealedOld, 'k').toString(), 'old');
    assert.equal(both.sealingKeyId, newKey.ring.sealingKeyId);
    assert.equal(newKey.ring.open(K, both.seal(K, Buffer.from('n'), true), 'k').toString(), 'n');
  });

  it('parses only base64 32-byte keys, with messages that hold no key material', () => {
    const short = randomBytes(31).toString('base64');
    const cases: [string, RegExp][] = [
      ['', /holds no key/],
      [short, /line 1 decodes to 31 bytes, not 32/],
      [`${randomBytes(32).toString('base64')}\n!!!`, /line 2 is not base64/],
      [randomBytes(32).toString('hex'), /decodes to 48 bytes/],
    ];
    for (const [text, why] of cases) {
      assert.throws(
        () => Keyring.parse(text),
        (err: unknown) => {
          assert.match((err as Error).message, why);
          assert.ok(!(err as Error).message.includes(short));
          return true;
        },
      );
    }
  });
});
