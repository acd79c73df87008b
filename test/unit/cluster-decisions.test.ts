import assert from 'node:assert/strict';
import {
  confirmedLeaseEnd,
  fanoutVerdict,
  leadership,
  nextConfirmInMs,
  LeadershipReason,
  replicasToCheck,
  syncLag,
  type LeadershipFacts,
  type NodeRecord,
  type TokenCheck,
} from '../../src/cluster/decisions.js';
import { parseNode } from '../../src/cluster/registry.js';
import { parsePointer } from '../../src/cluster/replica.js';

const NOW = new Date('2026-06-01T12:00:00Z');
const at = (ms: number) => new Date(NOW.getTime() + ms);
const iso = (ms: number) => at(ms).toISOString();

function node(name: string, over: Partial<NodeRecord> = {}): NodeRecord {
  return { name, seenAt: iso(-1000), syncedRevision: 10, ...over };
}

describe('cluster decisions', () => {
  describe('leadership: may this node act?', () => {
    const cases: [string, LeadershipFacts, LeadershipReason][] = [
      [
        'does not act when another node holds the election',
        { elected: false, leaseAliveUntil: at(10_000), marginMs: 500 },
        LeadershipReason.NotElected,
      ],
      [
        'does not act when elected but etcd has not confirmed the lease yet',
        { elected: true, marginMs: 500 },
        LeadershipReason.LeaseUnconfirmed,
      ],
      [
        'acts when elected and the lease is alive for longer than the margin',
        { elected: true, leaseAliveUntil: at(3000), marginMs: 500 },
        LeadershipReason.Leader,
      ],
      [
        'stops within the margin before the lease may expire (cut off from etcd)',
        { elected: true, leaseAliveUntil: at(400), marginMs: 500 },
        LeadershipReason.LeaseExpiring,
      ],
      [
        'stops exactly at the margin',
        { elected: true, leaseAliveUntil: at(500), marginMs: 500 },
        LeadershipReason.LeaseExpiring,
      ],
      [
        'stops once the confirmed lease time has passed',
        { elected: true, leaseAliveUntil: at(-1), marginMs: 0 },
        LeadershipReason.LeaseExpiring,
      ],
    ];
    for (const [name, facts, reason] of cases) {
      it(name, () => {
        const v = leadership(facts, NOW);
        assert.equal(v.reason, reason);
        assert.equal(v.mayAct, reason === LeadershipReason.Leader);
      });
    }
    it('says until when it may act: the confirmed lease end minus the margin', () => {
      const v = leadership({ elected: true, leaseAliveUntil: at(3000), marginMs: 500 }, NOW);
      assert.ok(v.mayAct);
      assert.equal(v.untilMs, at(2500).getTime());
    });
  });

  describe('confirmedLeaseEnd: what one lease-time answer proves', () => {
    it('proves the lease alive until the query was sent plus the remaining TTL', () => {
      assert.deepEqual(confirmedLeaseEnd(at(-50), 2, 3), at(1950));
    });
    it('proves nothing from a TTL above the granted one (etcd\'s "forever" before the new etcd leader takes the leases over)', () => {
      assert.equal(confirmedLeaseEnd(NOW, 9223372036, 3), undefined);
    });
    it('proves nothing from an expired lease', () => {
      assert.equal(confirmedLeaseEnd(NOW, 0, 3), undefined);
      assert.equal(confirmedLeaseEnd(NOW, -1, 3), undefined);
    });
  });

  describe('nextConfirmInMs: when to ask etcd again', () => {
    const BEAT = 750;
    const MIN = 150;
    const verdictUntil = (ms: number) =>
      leadership({ elected: true, leaseAliveUntil: at(ms + 300), marginMs: 300 }, NOW);
    it('waits the regular beat while the confirmed term is long', () => {
      assert.equal(nextConfirmInMs(verdictUntil(1700), NOW, BEAT, MIN), BEAT);
    });
    it('asks again halfway to the end of a term shorter than the beat (TTL 3 s, etcd answered 1 s)', () => {
      // Sent now, answered "1" (rounded down): may act 700 ms; the beat (750 ms) would leave a gap.
      const v = leadership({ elected: true, leaseAliveUntil: at(1000), marginMs: 300 }, NOW);
      const next = nextConfirmInMs(v, NOW, BEAT, MIN);
      assert.equal(next, 350);
      assert.ok(
        v.mayAct && NOW.getTime() + next < v.untilMs,
        'the next answer is due before the term ends',
      );
    });
    it('never asks sooner than the minimum', () => {
      assert.equal(nextConfirmInMs(verdictUntil(100), NOW, BEAT, MIN), MIN);
    });
    it('waits the beat when this node may not act (the failure path retries on its own)', () => {
      const v = leadership({ elected: false, marginMs: 300 }, NOW);
      assert.equal(nextConfirmInMs(v, NOW, BEAT, MIN), BEAT);
    });
  });

  describe('syncLag: how far a replica is behind the leader', () => {
    const cases: [string, Parameters<typeof syncLag>, ReturnType<typeof syncLag>][] = [
      [
        'is in sync when nothing was published yet',
        [undefined, { syncedRevision: 0 }, NOW],
        { inSync: true, lagSeconds: 0 },
      ],
      [
        'is in sync when it applied the newest publication, however long ago',
        [{ revision: 42, at: iso(-3600_000) }, { syncedRevision: 42 }, NOW],
        { inSync: true, lagSeconds: 0 },
      ],
      [
        'is in sync when it applied a newer revision than this node has seen',
        [{ revision: 42, at: iso(-5000) }, { syncedRevision: 50 }, NOW],
        { inSync: true, lagSeconds: 0 },
      ],
      [
        'is behind by the age of the newest publication it has not applied',
        [{ revision: 42, at: iso(-2500) }, { syncedRevision: 41 }, NOW],
        { inSync: false, lagSeconds: 2.5 },
      ],
      [
        'is behind by 0 s, not a negative lag, when the publisher clock is ahead',
        [{ revision: 42, at: iso(+2000) }, { syncedRevision: 1 }, NOW],
        { inSync: false, lagSeconds: 0 },
      ],
    ];
    for (const [name, args, want] of cases) {
      it(name, () => assert.deepEqual(syncLag(...args), want));
    }
  });

  describe('replicasToCheck: who must serve a token', () => {
    it('waits for every node seen within the lease TTL', () => {
      const nodes = [node('a'), node('b', { seenAt: iso(-4999) })];
      assert.deepEqual(
        replicasToCheck(nodes, NOW, 5000).map((n) => n.name),
        ['a', 'b'],
      );
    });
    it('does not wait for a node whose heartbeat is older than the TTL (died, lease lingering)', () => {
      const nodes = [node('a'), node('dead', { seenAt: iso(-5001) })];
      assert.deepEqual(
        replicasToCheck(nodes, NOW, 5000).map((n) => n.name),
        ['a'],
      );
    });
    it('does not wait for a node with an unreadable heartbeat', () => {
      assert.deepEqual(replicasToCheck([node('x', { seenAt: 'yesterday' })], NOW, 5000), []);
    });
  });

  describe('fanoutVerdict: may the CA be told to look?', () => {
    const ok = (n: string): TokenCheck => ({ node: n, ok: true });
    const no = (n: string): TokenCheck => ({ node: n, ok: false, detail: 'HTTP 404' });
    it('is ready when every required replica serves the token', () => {
      assert.deepEqual(fanoutVerdict(['a', 'b'], [ok('a'), ok('b')], NOW, at(1000)), {
        kind: 'ready',
      });
    });
    it('ignores answers from replicas that are no longer required', () => {
      assert.equal(fanoutVerdict(['a'], [ok('a'), no('gone')], NOW, at(1000)).kind, 'ready');
    });
    it('waits while one replica does not serve it yet and time is left', () => {
      const v = fanoutVerdict(['a', 'b'], [ok('a'), no('b')], NOW, at(1000));
      assert.equal(v.kind, 'wait');
      assert.deepEqual(v.kind === 'wait' && v.missing.map((m) => m.node), ['b']);
    });
    it('fails at the deadline, naming the replica that does not serve it', () => {
      const v = fanoutVerdict(['a', 'b'], [ok('a'), no('b')], NOW, NOW);
      assert.equal(v.kind, 'failed');
      assert.deepEqual(v.kind === 'failed' && v.missing, [no('b')]);
    });
    it('counts a replica never checked as missing', () => {
      const v = fanoutVerdict(['a', 'b'], [ok('a')], NOW, at(-1));
      assert.equal(v.kind, 'failed');
      assert.equal(v.kind === 'failed' && v.missing[0]?.detail, 'not checked yet');
    });
    it('is never ready with no replica registered (not even this one)', () => {
      assert.equal(fanoutVerdict([], [], NOW, at(1000)).kind, 'wait');
      assert.equal(fanoutVerdict([], [], NOW, NOW).kind, 'failed');
    });
  });

  describe('records read from etcd are outside input', () => {
    const pointers: [string, string, boolean][] = [
      [
        'accepts a well-formed pointer',
        '{"serial":"0EB77D9D595154A2","at":"2026-06-01T00:00:00Z","by":"n1"}',
        true,
      ],
      ['refuses a serial that is not upper-case hex', '{"serial":"../../etc","at":"x"}', false],
      [
        'refuses a lower-case serial (stored serials are upper-case)',
        '{"serial":"0eb7","at":"x"}',
        false,
      ],
      ['refuses a pointer without a time', '{"serial":"AB"}', false],
      ['refuses a serial of absurd length', `{"serial":"${'A'.repeat(129)}","at":"x"}`, false],
      ['refuses JSON that is not an object', '"AB"', false],
      ['refuses garbage', '{serial:', false],
    ];
    for (const [name, value, ok] of pointers) {
      it(`live pointer: ${name}`, () => assert.equal(parsePointer(value) !== undefined, ok));
    }
    it('node record: keeps only the known fields, with their types', () => {
      const n = parseNode(
        '{"name":"n1","seenAt":"2026-06-01T00:00:00Z","syncedRevision":"7","selfCheckAddress":5,"extra":"x","lastApplyLagMs":12}',
      );
      assert.deepEqual(n, {
        name: 'n1',
        seenAt: '2026-06-01T00:00:00Z',
        syncedRevision: 0,
        lastApplyLagMs: 12,
      });
    });
    it('node record: refuses one without a name or heartbeat', () => {
      assert.equal(parseNode('{"name":"n1"}'), undefined);
      assert.equal(parseNode('{"seenAt":"x"}'), undefined);
      assert.equal(parseNode('nope'), undefined);
    });
  });
});
