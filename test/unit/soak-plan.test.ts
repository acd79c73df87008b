import assert from 'node:assert/strict';
import {
  CORRUPTIONS,
  FAULT_KINDS,
  OutageTracker,
  UNNAMED,
  corruptBytes,
  faultDeck,
  isCorruptible,
  ordersPerCertificate,
  pebbleOrderIds,
  seededRandom,
} from '../../scripts/soak-plan.js';

describe('soak plan (scripts/soak-plan.ts)', () => {
  it('the same seed deals the same faults, another seed others', () => {
    const deal = (seed: number) => {
      const next = faultDeck(seededRandom(seed));
      return Array.from({ length: 21 }, () => next());
    };
    assert.deepEqual(deal(42), deal(42));
    assert.notDeepEqual(deal(42), deal(43));
  });

  it('every fault kind comes up once in each round of the deck', () => {
    const next = faultDeck(seededRandom(1));
    for (let round = 0; round < 5; round++) {
      const dealt = Array.from({ length: FAULT_KINDS.length }, () => next());
      assert.deepEqual([...dealt].sort(), [...FAULT_KINDS].sort(), `round ${round}`);
    }
  });

  it('the random source stays in [0, 1)', () => {
    const r = seededRandom(0);
    for (let i = 0; i < 10_000; i++) {
      const x = r();
      assert.ok(x >= 0 && x < 1, String(x));
    }
  });

  const record = Buffer.from(JSON.stringify({ attempts: 1, nextRetry: '2026-01-01T00:00:00Z' }));
  const key = Buffer.from(
    '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n',
  );
  for (const kind of CORRUPTIONS) {
    it(`a ${kind} record no longer parses as the good one`, () => {
      for (const good of [record, key]) {
        const bad = corruptBytes(kind, good, seededRandom(3));
        assert.notDeepEqual(bad, good);
        if (good === record) {
          let same = false;
          try {
            same = JSON.stringify(JSON.parse(bad.toString())) === good.toString();
          } catch {
            same = false;
          }
          assert.equal(same, false);
        }
      }
    });
  }

  const files: [string, boolean][] = [
    ['certs/a.test/production.json', true],
    ['acme/127.0.0.1-14000-abc/account.json', true],
    ['claims.json', true],
    ['live/a.test/privkey.pem', false],
    ['archive/a.test/cert1.pem', false],
    ['.locks/cert-a.test', false],
    ['certs/a.test/production.json.corrupt-20261202T120000Z', false],
    ['certs/a.test/.production.json.123.tmp', false],
  ];
  for (const [file, want] of files) {
    it(`${file} ${want ? 'may' : 'may never'} be corrupted`, () => {
      assert.equal(isCorruptible(file), want);
    });
  }

  it("orders per certificate: Pebble's ids named by the daemon's order lines, the rest unnamed", () => {
    const log = [
      'Pebble 2026/12/02 wfe.go:1816: Added order "o1" to the db',
      'Pebble 2026/12/02 wfe.go:1817: There are now 1 orders in the db',
      'Pebble 2026/12/02 wfe.go:1816: Added order "o2" to the db',
      'Pebble 2026/12/02 wfe.go:1816: Added order "o3" to the db',
    ].join('\n');
    const ids = pebbleOrderIds(log);
    assert.deepEqual(ids, ['o1', 'o2', 'o3']);
    const lines = [
      { message: 'order placed', cert: 'a', order: 'https://127.0.0.1:1/my-order/o1' },
      { message: 'order placed', cert: 'a', order: 'https://127.0.0.1:1/my-order/o2' },
      { message: 'ordering certificate', cert: 'b' },
    ];
    assert.deepEqual(
      [...ordersPerCertificate(ids, lines)],
      [
        ['a', 2],
        [UNNAMED, 1],
      ],
    );
  });

  it('the longest outage runs from the first probe out to the first back; an open one up to the end', () => {
    const t = new OutageTracker();
    t.observe('a', true, 0);
    t.observe('a', false, 1000);
    t.observe('a', false, 2000);
    t.observe('a', true, 4000);
    t.observe('b', false, 5000);
    assert.deepEqual(t.longest(6000), { ms: 3000, name: 'a' });
    assert.deepEqual(t.longest(9000), { ms: 4000, name: 'b' });
    assert.deepEqual(t.out(), ['b']);
  });
});
