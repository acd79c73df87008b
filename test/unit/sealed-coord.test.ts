// Cluster coordination values (src/cluster/sealed-coord.ts): what a writer
// to etcd without the cluster key could put under coord/, and what a
// replica makes of it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CoordSealer } from '../../src/cluster/sealed-coord.js';
import { errorCode } from '../../src/domain/errors.js';
import { Keyring } from '../../src/store/sealed-value.js';
import type { LogFields, Logger } from '../../src/util/log.js';

const PREFIX = '/acme-sidecar/c1/coord/';

function recorder(): { log: Logger; warnings: LogFields[] } {
  const warnings: LogFields[] = [];
  const log: Logger = {
    error: () => {},
    warn: (_m, f) => void warnings.push(f ?? {}),
    info: () => {},
    debug: () => {},
    child: () => log,
  };
  return { log, warnings };
}

describe('sealed coordination values', () => {
  const ring = Keyring.fromKeys([randomBytes(32)]);
  const sealer = new CoordSealer(ring, PREFIX);
  const pointer = JSON.stringify({ serial: 'AB12', at: '2026-12-02T00:00:00.000Z', by: 'n1' });

  it('opens what it sealed for the same key, and the value stays readable in etcd', () => {
    const sealed = sealer.seal('live/www', pointer);
    assert.equal(sealer.open('live/www', sealed), pointer);
    assert.ok(sealed.includes(Buffer.from(pointer)), 'authenticated, not encrypted');
  });

  const refusals: { name: string; key: string; value: () => Buffer }[] = [
    {
      name: 'refuses plain JSON shaped like a live pointer',
      key: 'live/www',
      value: () => Buffer.from(pointer),
    },
    {
      name: 'refuses plain JSON shaped like a pending challenge',
      key: 'challenges/tok',
      value: () => Buffer.from(JSON.stringify({ domain: 'a.test', keyAuthorization: 'tok.x' })),
    },
    {
      name: "refuses a genuine pointer moved to another certificate's key",
      key: 'live/shop',
      value: () => sealer.seal('live/www', pointer),
    },
    {
      name: 'refuses a genuine token value moved to another token',
      key: 'challenges/tok2',
      value: () => sealer.seal('challenges/tok1', '{}'),
    },
    {
      name: "refuses a genuine node record moved to another node's key",
      key: 'nodes/evil',
      value: () => sealer.seal('nodes/n1', '{"name":"n1"}'),
    },
    {
      name: "refuses a value sealed for the same key in another cluster's prefix",
      key: 'live/www',
      value: () => new CoordSealer(ring, '/acme-sidecar/c2/coord/').seal('live/www', pointer),
    },
    {
      name: 'refuses a value sealed with another key',
      key: 'live/www',
      value: () =>
        new CoordSealer(Keyring.fromKeys([randomBytes(32)]), PREFIX).seal('live/www', pointer),
    },
    {
      name: 'refuses a store value (kv/) put under coord/',
      key: 'live/www',
      value: () => ring.seal('/acme-sidecar/c1/kv/live/www', Buffer.from(pointer), false),
    },
  ];
  for (const c of refusals) {
    it(`${c.name}, with STORE_DECRYPT_FAILED naming coord/<key>`, () => {
      assert.throws(
        () => sealer.open(c.key, c.value()),
        (err: unknown) =>
          errorCode(err) === 'STORE_DECRYPT_FAILED' &&
          (err as Error).message.includes(JSON.stringify(`coord/${c.key}`)),
      );
    });
  }

  it('openOrRefuse logs a refused value once per key and revision, and returns nothing', () => {
    const s = new CoordSealer(ring, PREFIX);
    const { log, warnings } = recorder();
    const planted = Buffer.from(pointer);
    assert.equal(s.openOrRefuse('live/www', planted, 7, log), undefined);
    assert.equal(s.openOrRefuse('live/www', planted, 7, log), undefined);
    assert.equal(warnings.length, 1, 'a resync does not log it again');
    assert.deepEqual(
      { key: warnings[0]?.key, code: warnings[0]?.code, revision: warnings[0]?.revision },
      { key: 'coord/live/www', code: 'STORE_DECRYPT_FAILED', revision: 7 },
    );
    assert.equal(s.openOrRefuse('live/www', planted, 8, log), undefined);
    assert.equal(warnings.length, 2, 'a new write of the key is logged');
    assert.equal(s.openOrRefuse('live/www', s.seal('live/www', pointer), 9, log), pointer);
    assert.equal(warnings.length, 2);
  });
});
