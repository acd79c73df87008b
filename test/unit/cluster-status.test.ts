import assert from 'node:assert/strict';
import type { StatusCluster } from '../../src/domain/status.js';
import { buildStatusSnapshot } from '../../src/http/status.js';
import { renderStatusPage } from '../../src/http/page.js';
import { Metrics } from '../../src/metrics/metrics.js';

const NOW = new Date('2026-06-01T12:00:00Z');

const cluster: StatusCluster = {
  node: 'node2',
  role: 'follower',
  leader: 'node1',
  reason: 'NotElected',
  replicas: [
    {
      name: 'node1',
      inSync: true,
      lagSeconds: 0,
      syncedAt: '2026-06-01T11:59:00Z',
      lastApplyLagMs: null,
      seenAt: '2026-06-01T11:59:59Z',
    },
    {
      name: 'node2',
      inSync: false,
      lagSeconds: 1.5,
      syncedAt: '2026-06-01T11:58:00Z',
      lastApplyLagMs: 120,
      seenAt: '2026-06-01T11:59:59Z',
    },
  ],
};

function input(c?: StatusCluster) {
  return {
    certificates: [],
    problems: [],
    target: 'staging' as const,
    platform: 'static',
    ...(c && { cluster: c }),
  };
}

describe('cluster status: /status, page and metrics', () => {
  it('a single sidecar has no cluster section', () => {
    assert.equal('cluster' in buildStatusSnapshot(input(), NOW), false);
  });

  it("shows this node's role, the leader and each replica's lag, and nothing it was not asked to", () => {
    const extra = {
      ...cluster,
      secret: 'x',
      replicas: cluster.replicas.map((r) => ({ ...r, selfCheckAddress: '10.0.0.1:80' })),
    };
    const s = buildStatusSnapshot(input(extra), NOW);
    assert.deepEqual(s.cluster, cluster);
  });

  it('the page names the node, its role and the leader', () => {
    const html = renderStatusPage(buildStatusSnapshot(input(cluster), NOW), NOW);
    assert.match(
      html,
      /<strong>node2<\/strong> is follower · leader node1 · 1\/2 replicas in sync/,
    );
  });

  it('metrics: who leads, and each replica sync lag', async () => {
    const m = new Metrics('static', {
      certificates: () => [],
      lastPass: () => undefined,
      cluster: () => cluster,
    });
    const { body } = await m.render();
    assert.match(body, /acme_sidecar_cluster_leader\{node="node2",leader="node1"\} 0/);
    assert.match(body, /acme_sidecar_cluster_replica_sync_lag_seconds\{replica="node2"\} 1\.5/);
    assert.match(body, /acme_sidecar_cluster_replica_sync_lag_seconds\{replica="node1"\} 0/);
  });
});
