import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorCode } from '../../src/domain/errors.js';
import type { CertStore } from '../../src/store/store.js';

export interface StoreUnderTest {
  store: CertStore;
  cleanup: () => Promise<void>;
}

/** Keys an attacker (a label value, an ACME token) might try; every store must refuse them all. */
export const HOSTILE_KEYS: readonly (readonly [string, string])[] = [
  ['a parent reference', '../x'],
  ['a parent reference in the middle', 'a/../../b'],
  ['an absolute path', '/abs'],
  ['the empty key', ''],
  ['an empty segment', 'a//b'],
  ['a trailing slash', 'a/'],
  ['a hidden name', '.hidden'],
  ['a current-directory segment', 'a/./b'],
  ['a NUL byte', 'nul\0byte'],
  ['a space', 'sp ace'],
  ['a backslash', 'back\\slash'],
  ['a 300-character segment', 'x'.repeat(300)],
];

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.equal(errorCode(err), code);
    return true;
  });
}

/**
 * What every CertStore must do, whatever it is built on. Run it from the
 * implementation's own test file: `storeContract('FsCertStore', make)`.
 * `make` returns a fresh, empty store whose locks are polled quickly enough
 * for waits of a few hundred milliseconds to be observable.
 */
export function storeContract(name: string, make: () => Promise<StoreUnderTest>): void {
  describe(`CertStore contract: ${name}`, () => {
    let s: CertStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store: s, cleanup } = await make());
    });
    afterEach(async () => {
      await cleanup();
    });

    describe('values', () => {
      it('loads back the exact bytes of a stored Buffer', async () => {
        const bytes = Buffer.from([0, 1, 2, 254, 255, 10, 13]);
        await s.store('certs/example.com/raw', bytes);
        assert.deepEqual(await s.load('certs/example.com/raw'), bytes);
      });

      it('loads a stored string back as its UTF-8 bytes', async () => {
        await s.store('accounts/prod/meta.json', '{"é":1}');
        const got = await s.load('accounts/prod/meta.json');
        assert.ok(got);
        assert.equal(got.toString('utf8'), '{"é":1}');
      });

      it('loads a secret back like any other value', async () => {
        await s.store('accounts/prod/key.pem', 'KEY', { secret: true });
        assert.equal((await s.load('accounts/prod/key.pem'))?.toString(), 'KEY');
      });

      it('returns undefined for a key that was never stored', async () => {
        assert.equal(await s.load('certs/nope/cert.pem'), undefined);
        assert.equal(await s.load('nope'), undefined);
      });

      it('replaces the value when a key is stored again', async () => {
        await s.store('k', 'a much longer first value');
        await s.store('k', 'short');
        assert.equal((await s.load('k'))?.toString(), 'short');
      });

      it('says whether a key exists', async () => {
        assert.equal(await s.exists('certs/a/cert.pem'), false);
        await s.store('certs/a/cert.pem', 'x');
        assert.equal(await s.exists('certs/a/cert.pem'), true);
      });

      it('deletes a key, and deleting it again is not an error', async () => {
        await s.store('certs/a/cert.pem', 'x');
        await s.delete('certs/a/cert.pem');
        assert.equal(await s.exists('certs/a/cert.pem'), false);
        assert.equal(await s.load('certs/a/cert.pem'), undefined);
        await s.delete('certs/a/cert.pem');
        await s.delete('never/stored');
      });

      it('leaves sibling keys alone when deleting one', async () => {
        await s.store('certs/a/cert.pem', 'x');
        await s.store('certs/a/key.pem', 'y');
        await s.delete('certs/a/cert.pem');
        assert.equal((await s.load('certs/a/key.pem'))?.toString(), 'y');
      });
    });

    describe('quarantine', () => {
      const at = new Date('2026-12-02T08:30:12.345Z');

      it('moves a value aside under a name with the UTC time, and the key then reads as missing', async () => {
        const bytes = Buffer.from('{"meta": garbage');
        await s.store('certs/a.example/production.json', bytes, { secret: true });
        const aside = await s.quarantine('certs/a.example/production.json', at);
        assert.ok(aside, 'kept aside');
        assert.match(aside, /certs\/a\.example\/production\.json\.corrupt-20261202T083012Z$/);
        assert.equal(await s.load('certs/a.example/production.json'), undefined);
        assert.equal(await s.exists('certs/a.example/production.json'), false);
        assert.deepEqual(await s.load(aside), bytes, 'the aside copy holds the exact bytes');
      });

      it('never overwrites an earlier aside copy of the same second', async () => {
        await s.store('certs/a/backoff.json', 'first');
        const one = await s.quarantine('certs/a/backoff.json', at);
        await s.store('certs/a/backoff.json', 'second');
        const two = await s.quarantine('certs/a/backoff.json', at);
        assert.ok(one && two);
        assert.notEqual(one, two);
        assert.equal((await s.load(one))?.toString(), 'first');
        assert.equal((await s.load(two))?.toString(), 'second');
      });

      it('returns undefined when there is nothing to keep aside', async () => {
        assert.equal(await s.quarantine('certs/none/production.json', at), undefined);
      });

      it('refuses a hostile key', async () => {
        await rejectsWith(s.quarantine('../x', at), 'STORE_KEY_INVALID');
      });
    });

    describe('list', () => {
      it('lists the names one level below a prefix, sorted', async () => {
        await s.store('certs/b.example/cert.pem', 'x');
        await s.store('certs/a.example/cert.pem', 'x');
        await s.store('certs/a.example/key.pem', 'x');
        await s.store('certs/c', 'x');
        assert.deepEqual(await s.list('certs'), ['a.example', 'b.example', 'c']);
        assert.deepEqual(await s.list('certs/a.example'), ['cert.pem', 'key.pem']);
      });

      it('returns an empty list for a prefix with nothing below it', async () => {
        assert.deepEqual(await s.list('certs'), []);
        await s.store('certs/a/cert.pem', 'x');
        assert.deepEqual(await s.list('certs/b'), []);
        assert.deepEqual(await s.list('certs/a/cert.pem'), []);
      });

      it('lists the top level for the empty prefix, without anything the store keeps for itself', async () => {
        await s.store('certs/a/cert.pem', 'x');
        await s.store('accounts/a/key.pem', 'x', { secret: true });
        await s.lock('certs/a');
        try {
          assert.deepEqual(await s.list(''), ['accounts', 'certs']);
          assert.deepEqual(await s.list('certs'), ['a']);
        } finally {
          await s.unlock('certs/a');
        }
      });
    });

    describe('hostile keys', () => {
      for (const [what, key] of HOSTILE_KEYS) {
        it(`rejects a key with ${what} in every operation`, async () => {
          await rejectsWith(s.store(key, 'x'), 'STORE_KEY_INVALID');
          await rejectsWith(s.load(key), 'STORE_KEY_INVALID');
          await rejectsWith(s.exists(key), 'STORE_KEY_INVALID');
          await rejectsWith(s.delete(key), 'STORE_KEY_INVALID');
          await rejectsWith(s.lock(key, { timeoutMs: 0 }), 'STORE_KEY_INVALID');
          await rejectsWith(s.unlock(key), 'STORE_KEY_INVALID');
          if (key !== '') await rejectsWith(s.list(key), 'STORE_KEY_INVALID');
        });
      }
    });

    describe('locks', () => {
      it('makes a second locker wait until the first unlocks', async () => {
        const events: string[] = [];
        await s.lock('certs/a');
        events.push('first locked');
        const second = s.lock('certs/a', { timeoutMs: 10_000 }).then(() => {
          events.push('second locked');
        });
        // Long enough for several polls: a broken lock would let it in now.
        await sleep(500);
        events.push('first unlocking');
        await s.unlock('certs/a');
        await second;
        await s.unlock('certs/a');
        assert.deepEqual(events, ['first locked', 'first unlocking', 'second locked']);
      });

      it('does not make locks of different names wait for each other', async () => {
        await s.lock('certs/a');
        try {
          await s.lock('certs/b', { timeoutMs: 1_000 });
          await s.unlock('certs/b');
        } finally {
          await s.unlock('certs/a');
        }
      });

      it('gives up with LOCK_TIMEOUT when the lock stays held', async () => {
        await s.lock('certs/a');
        try {
          const started = Date.now();
          await rejectsWith(s.lock('certs/a', { timeoutMs: 300 }), 'LOCK_TIMEOUT');
          assert.ok(Date.now() - started >= 250, 'gave up before the timeout');
        } finally {
          await s.unlock('certs/a');
        }
      });

      it('can be locked again after an unlock', async () => {
        await s.lock('certs/a');
        await s.unlock('certs/a');
        await s.lock('certs/a', { timeoutMs: 1_000 });
        await s.unlock('certs/a');
        await s.lock('certs/a', { timeoutMs: 1_000 });
        await s.unlock('certs/a');
      });
    });
  });
}
