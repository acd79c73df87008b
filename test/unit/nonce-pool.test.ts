import assert from 'node:assert/strict';
import { NoncePool } from '../../src/acme/nonce-pool.js';
import { POLL_TIMING, pollDelayMs, pollVerdict, type PollVerdict } from '../../src/acme/poll.js';

const CA = 'https://127.0.0.1:14000';
const OTHER = 'https://127.0.0.1:15000';

function clock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('NoncePool', () => {
  it('is empty at first, so the caller sends a HEAD to newNonce', () => {
    assert.equal(new NoncePool().take(`${CA}/nonce-plz`), undefined);
  });

  it('hands out the nonce an answer carried for a request to any URL of the same CA', () => {
    const pool = new NoncePool();
    pool.put(`${CA}/my-order/abc`, 'nonce1');
    assert.equal(pool.take(`${CA}/dir`), 'nonce1');
  });

  it('hands out each nonce once', () => {
    const pool = new NoncePool();
    pool.put(`${CA}/a`, 'nonce1');
    assert.equal(pool.take(`${CA}/dir`), 'nonce1');
    assert.equal(pool.take(`${CA}/dir`), undefined);
  });

  it('hands out the newest nonce first', () => {
    const pool = new NoncePool();
    pool.put(`${CA}/a`, 'old');
    pool.put(`${CA}/b`, 'new');
    assert.equal(pool.take(`${CA}/dir`), 'new');
    assert.equal(pool.take(`${CA}/dir`), 'old');
  });

  it('keeps the nonces of two CAs apart (a nonce is only good at the server that issued it)', () => {
    const pool = new NoncePool();
    pool.put(`${CA}/a`, 'staging-nonce');
    assert.equal(pool.take(`${OTHER}/dir`), undefined);
    assert.equal(pool.take(`${CA}/dir`), 'staging-nonce');
  });

  it('does not use a nonce older than maxAgeMs, nor any older one behind it', () => {
    const c = clock();
    const pool = new NoncePool({ maxAgeMs: 1000, now: c.now });
    pool.put(`${CA}/a`, 'n1');
    pool.put(`${CA}/a`, 'n2');
    c.advance(1001);
    assert.equal(pool.take(`${CA}/dir`), undefined);
    assert.equal(pool.size(`${CA}/dir`), 0);
  });

  it('uses a nonce exactly maxAgeMs old', () => {
    const c = clock();
    const pool = new NoncePool({ maxAgeMs: 1000, now: c.now });
    pool.put(`${CA}/a`, 'n1');
    c.advance(1000);
    assert.equal(pool.take(`${CA}/dir`), 'n1');
  });

  it('keeps at most maxPerOrigin nonces, dropping the oldest', () => {
    const pool = new NoncePool({ maxPerOrigin: 2 });
    pool.put(`${CA}/a`, 'n1');
    pool.put(`${CA}/a`, 'n2');
    pool.put(`${CA}/a`, 'n3');
    assert.equal(pool.size(CA), 2);
    assert.equal(pool.take(CA), 'n3');
    assert.equal(pool.take(CA), 'n2');
    assert.equal(pool.take(CA), undefined);
  });

  const ignored: [string, string, unknown][] = [
    ['an answer without a Replay-Nonce header', `${CA}/a`, undefined],
    ['an empty header', `${CA}/a`, ''],
    ['a header that is not base64url (RFC 8555 §6.5.1)', `${CA}/a`, 'a b/c'],
    ['a header given twice (an array)', `${CA}/a`, ['n1', 'n2']],
    ['an over-long header', `${CA}/a`, 'x'.repeat(257)],
    ['a URL that does not parse', 'not a url', 'n1'],
  ];
  for (const [name, url, nonce] of ignored) {
    it(`ignores ${name}`, () => {
      const pool = new NoncePool();
      pool.put(url, nonce);
      assert.equal(pool.size(CA), 0);
      assert.equal(pool.take(CA), undefined);
    });
  }
});

describe('pollDelayMs', () => {
  const t = POLL_TIMING;
  const cases: [string, number, number | undefined, number][] = [
    [
      'waits a short first wait before the first poll when the CA named none',
      1,
      undefined,
      t.firstMs,
    ],
    ['waits the base after the first poll found the object pending', 2, undefined, t.baseMs],
    ['doubles after each further poll', 4, undefined, t.baseMs * 4],
    ['never waits longer than the cap without a Retry-After', 30, undefined, t.maxMs],
    ["waits the CA's Retry-After before the first poll", 1, 3, 3000],
    ["waits the CA's Retry-After later on too, even when shorter than the backoff", 6, 1, 1000],
    ['polls at once when the CA says Retry-After: 0', 3, 0, 0],
    ['caps a Retry-After of an hour', 2, 3600, t.maxRetryAfterMs],
    ['ignores a negative Retry-After', 1, -5, t.firstMs],
    ['ignores a Retry-After that is not a number', 1, Number.NaN, t.firstMs],
  ];
  for (const [name, n, retryAfterS, want] of cases) {
    it(name, () => assert.equal(pollDelayMs(n, retryAfterS), want));
  }
});

describe('pollVerdict', () => {
  const cases: [string, 'authorization' | 'order', unknown, PollVerdict][] = [
    ['an authorization that is valid is done', 'authorization', 'valid', 'done'],
    ['an authorization still pending is waited for', 'authorization', 'pending', 'wait'],
    ['an invalid authorization has failed', 'authorization', 'invalid', 'failed'],
    [
      'a deactivated authorization will not change by waiting',
      'authorization',
      'deactivated',
      'unexpected',
    ],
    ['a processing order is waited for', 'order', 'processing', 'wait'],
    ['a valid order is done', 'order', 'valid', 'done'],
    ['an invalid order has failed', 'order', 'invalid', 'failed'],
    [
      'an order still ready after finalize will not change by waiting',
      'order',
      'ready',
      'unexpected',
    ],
    ['a pending order after finalize will not change by waiting', 'order', 'pending', 'unexpected'],
    ['an answer without a status is unexpected', 'order', undefined, 'unexpected'],
  ];
  for (const [name, kind, status, want] of cases) {
    it(name, () => assert.equal(pollVerdict(kind, status), want));
  }
});
