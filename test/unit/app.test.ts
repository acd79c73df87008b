import assert from 'node:assert/strict';
import { clusterCoordination, solo, type ClusterParts } from '../../src/app/coordination.js';
import { maxPassAgeMs, readiness, type ReadinessFacts } from '../../src/app/health.js';
import { describePlan } from '../../src/app/plan.js';
import { noCertificatesHint } from '../../src/app/pass.js';
import { PassScheduler } from '../../src/app/scheduler.js';
import { SidecarError } from '../../src/domain/errors.js';
import type { ClusterStatus } from '../../src/cluster/cluster.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import { PlatformReason, type PlatformAction } from '../../src/lifecycle/platform-policy.js';
import type { Action } from '../../src/lifecycle/policy.js';
import { Reason } from '../../src/lifecycle/reasons.js';
import { createLogger } from '../../src/util/log.js';

const NOW = new Date('2026-06-01T12:00:00Z');
const log = createLogger({ level: 'error', format: 'json' });

describe('app: the dry-run plan in plain words', () => {
  const cases: {
    name: string;
    action: Action;
    platform?: PlatformAction;
    want: string;
  }[] = [
    {
      name: 'a certificate with nothing served gets a placeholder',
      action: { kind: 'placeholder', reason: Reason.Missing },
      want: 'write a self-signed placeholder (Missing)',
    },
    {
      name: 'a certificate due from staging is ordered from the staging CA',
      action: { kind: 'issue', phase: 'staging', reason: Reason.StagingFirst },
      want: 'order a certificate from the staging CA (StagingFirst)',
    },
    {
      name: 'a stored certificate better than the one served is deployed',
      action: { kind: 'deploy', phase: 'production', reason: Reason.LiveOutdated },
      want: 'serve the stored production certificate (LiveOutdated)',
    },
    {
      name: 'the certificate action wins over a platform push',
      action: { kind: 'issue', phase: 'production', reason: Reason.NearingExpiry },
      platform: { kind: 'push', reason: PlatformReason.PlatformMissing },
      want: 'order a certificate from the production CA (NearingExpiry)',
    },
    {
      name: 'a valid certificate the platform lacks is pushed',
      action: { kind: 'none', reason: Reason.Valid },
      platform: { kind: 'push', reason: PlatformReason.PlatformMissing },
      want: 'push the certificate to rancher (PlatformMissing)',
    },
    {
      name: 'a platform certificate that is not ours is left alone',
      action: { kind: 'none', reason: Reason.Valid },
      platform: { kind: 'conflict', reason: PlatformReason.PlatformOutdated },
      want: "leave rancher's certificate alone: not ours (PlatformOutdated)",
    },
    {
      name: 'a valid certificate says when it renews',
      action: { kind: 'none', reason: Reason.Valid, renewAt: new Date('2026-07-01T00:00:00Z') },
      want: 'nothing (Valid, renews after 2026-07-01T00:00:00.000Z)',
    },
    {
      name: 'a valid certificate with no renewal time says only why',
      action: { kind: 'none', reason: Reason.Valid },
      platform: { kind: 'none', reason: PlatformReason.PlatformMissing },
      want: 'nothing (Valid)',
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(describePlan(c.action, c.platform, 'rancher'), c.want));
  }
});

describe('app: readiness', () => {
  const base: ReadinessFacts = {
    storeOk: true,
    loopTimeSeconds: 300,
    stateDir: '/state',
    lastPass: {
      startedAt: '2026-06-01T11:59:00.000Z',
      finishedAt: '2026-06-01T11:59:30.000Z',
      ok: true,
    },
  };
  const cases: {
    name: string;
    facts: ReadinessFacts;
    now?: Date;
    ok: boolean;
    reasons: string[];
  }[] = [
    {
      name: 'is ready after a recent pass with the store readable',
      facts: base,
      ok: true,
      reasons: [],
    },
    {
      name: 'is not ready before the first pass has finished',
      facts: { storeOk: true, loopTimeSeconds: 300, stateDir: '/state' },
      ok: false,
      reasons: ['the first pass has not finished yet'],
    },
    {
      name: 'is not ready when discovery failed',
      facts: {
        ...base,
        lastPass: { ...base.lastPass!, ok: false, discoveryError: 'PLATFORM_DOWN: x' },
      },
      ok: false,
      reasons: ['discovery failed: PLATFORM_DOWN: x'],
    },
    {
      name: 'is not ready when no pass finished for three loop times and a minute',
      facts: base,
      now: new Date(NOW.getTime() + 16 * 60_000),
      ok: false,
      reasons: ['no pass finished since 2026-06-01T11:59:30.000Z'],
    },
    {
      name: 'stays ready a day after the last pass when passes only run daily',
      facts: { ...base, loopTimeSeconds: 0 },
      now: new Date(NOW.getTime() + 25 * 3600_000),
      ok: true,
      reasons: [],
    },
    {
      name: 'is not ready when the store cannot be read',
      facts: { ...base, storeOk: false },
      ok: false,
      reasons: ['the store under /state cannot be read'],
    },
    {
      name: 'a replica that does not lead is ready once synced, whatever its passes',
      facts: { storeOk: false, loopTimeSeconds: 300, stateDir: '/state', follower: [] },
      ok: true,
      reasons: [],
    },
    {
      name: 'a replica that does not lead is not ready before its first sync',
      facts: { ...base, follower: ['live/ has not been synced from the cluster yet'] },
      ok: false,
      reasons: ['live/ has not been synced from the cluster yet'],
    },
  ];
  for (const c of cases) {
    it(c.name, () =>
      assert.deepEqual(readiness(c.facts, c.now ?? NOW), { ok: c.ok, reasons: c.reasons }),
    );
  }
  it('allows three loop times and a minute, or 26 hours on the daily schedule', () => {
    assert.equal(maxPassAgeMs(300), 960_000);
    assert.equal(maxPassAgeMs(0), 26 * 3600_000);
  });
});

describe('app: coordination', () => {
  function fakeCluster(mayAct: boolean, synced: boolean): ClusterParts & { started: number } {
    const status: ClusterStatus = {
      node: 'n2',
      role: mayAct ? 'leader' : 'follower',
      leader: 'n1',
      reason: 'NotElected',
      replicas: [],
      replicasReadAt: null,
    };
    return {
      started: 0,
      leadership: () => (mayAct ? { mayAct, signal: new AbortController().signal } : { mayAct }),
      status: () => status,
      servedCertificates: () => [
        {
          name: 'a',
          domains: ['a.test'],
          serial: '01',
          notBefore: '2026-05-01T00:00:00.000Z',
          notAfter: '2026-08-01T00:00:00.000Z',
          inSync: true,
          phase: 'production',
        },
      ],
      hasSynced: () => synced,
      start() {
        this.started++;
      },
      stop: async () => undefined,
    };
  }

  it('alone, the node always acts and reports its reconciler', () => {
    assert.deepEqual(solo.term(), { mayAct: true });
    assert.equal(solo.servedCertificates('production'), undefined);
    assert.equal(solo.followerReadiness(), undefined);
    assert.equal(solo.status(), undefined);
  });

  it('a replica that does not lead reports what its live/ serves, ready in the target phase', () => {
    const c = clusterCoordination({
      cluster: fakeCluster(false, true),
      nodeName: 'n2',
      clusterName: 'c',
      checkKey: async () => 'ok',
      log,
    });
    const [served] = c.servedCertificates('production') ?? [];
    assert.equal(served?.ready, true);
    assert.equal(served?.reason, Reason.Valid);
    assert.equal(c.leader(), 'n1');
    assert.deepEqual(c.followerReadiness(), []);
  });

  it('the leader reports its reconciler, not its live/', () => {
    const c = clusterCoordination({
      cluster: fakeCluster(true, false),
      nodeName: 'n1',
      clusterName: 'c',
      checkKey: async () => 'ok',
      log,
    });
    assert.equal(c.servedCertificates('production'), undefined);
    assert.equal(c.followerReadiness(), undefined);
  });

  it('a wrong cluster key stops startup; an unreachable etcd does not', async () => {
    const wrong = new SidecarError('STORE_DECRYPT_FAILED', 'another key');
    const bad = clusterCoordination({
      cluster: fakeCluster(false, false),
      nodeName: 'n2',
      clusterName: 'c',
      checkKey: () => Promise.reject(wrong),
      log,
    });
    await assert.rejects(bad.prepare(), /another key/);
    const down = clusterCoordination({
      cluster: fakeCluster(false, false),
      nodeName: 'n2',
      clusterName: 'c',
      checkKey: () => Promise.reject(new Error('ECONNREFUSED')),
      log,
    });
    assert.equal(await down.prepare(), false);
  });

  it('joins once etcd can prove the key, and reports a wrong key found later as fatal', async () => {
    const cluster = fakeCluster(false, false);
    let calls = 0;
    const fatal: unknown[] = [];
    const c = clusterCoordination({
      cluster,
      nodeName: 'n2',
      clusterName: 'c',
      checkKey: async () => {
        calls++;
        if (calls < 3) throw new Error('ECONNREFUSED');
        return 'ok';
      },
      sleep: async () => undefined,
      log,
    });
    const ac = new AbortController();
    c.join(await c.prepare(), {
      onElected: () => undefined,
      signal: ac.signal,
      onFatal: (e) => fatal.push(e),
    });
    await waitFor(() => cluster.started === 1);
    assert.equal(calls, 3);
    assert.equal(fatal.length, 0);

    const later = fakeCluster(false, false);
    const wrong = new SidecarError('STORE_DECRYPT_FAILED', 'another key');
    let first = true;
    const c2 = clusterCoordination({
      cluster: later,
      nodeName: 'n2',
      clusterName: 'c',
      checkKey: async () => {
        if (first) {
          first = false;
          throw new Error('ECONNREFUSED');
        }
        throw wrong;
      },
      sleep: async () => undefined,
      log,
    });
    c2.join(await c2.prepare(), {
      onElected: () => undefined,
      signal: ac.signal,
      onFatal: (e) => fatal.push(e),
    });
    await waitFor(() => fatal.length === 1);
    assert.equal(fatal[0], wrong);
    assert.equal(later.started, 0);
  });
});

describe('app: the pass scheduler', () => {
  it('never overlaps passes: a trigger during a pass runs exactly one more after it', async () => {
    const ac = new AbortController();
    let release: () => void = () => undefined;
    let runs = 0;
    const s = new PassScheduler({
      pass: () => {
        runs++;
        return new Promise<void>((r) => (release = r));
      },
      term: () => ({ mayAct: true }),
      dueTimes: () => [],
      loopTimeSeconds: 0,
      checkSchedule: '0 0 * * *',
      signal: ac.signal,
      clock: new FixedClock(NOW),
      log,
    });
    s.trigger('a');
    s.trigger('b');
    s.trigger('c');
    assert.equal(runs, 1);
    release();
    await waitFor(() => runs === 2);
    release();
    await s.inFlight();
    assert.equal(runs, 2);
    ac.abort();
    await s.stop();
  });

  it('does not start a pass on a node that may not act', async () => {
    const ac = new AbortController();
    let runs = 0;
    const s = new PassScheduler({
      pass: async () => void runs++,
      term: () => ({ mayAct: false }),
      dueTimes: () => [],
      loopTimeSeconds: 0,
      checkSchedule: '0 0 * * *',
      signal: ac.signal,
      clock: new FixedClock(NOW),
      log,
    });
    s.trigger('startup');
    assert.equal(s.inFlight(), undefined);
    assert.equal(runs, 0);
  });
});

describe('app: the hint for an empty configuration', () => {
  for (const [platform, want] of [
    ['rancher', /label services with io\.acme-sidecar\.domains/],
    ['docker', /label containers with io\.acme-sidecar\.domains/],
    ['static', /set DOMAINS, e\.g\. DOMAINS=www\.example\.com/],
  ] as const) {
    it(`names what to set on ${platform}`, () => assert.match(noCertificatesHint(platform), want));
  }
});

async function waitFor(cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setImmediate(r));
  }
}
