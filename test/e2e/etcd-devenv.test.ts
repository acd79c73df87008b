// The devenv's etcd cluster itself: three real members on loopback, one of
// them stopped (still a quorum), a majority stopped (no quorum), members back
// (data kept), and nothing left running after stop().
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { startEtcdCluster, type EtcdCluster } from '../../devenv/etcd.js';
import { pidAlive } from '../../devenv/proc.js';

/** Every call bounded: with no quorum etcd3 would otherwise wait forever. */
function client(endpoints: string[]): Etcd3 {
  return new Etcd3({
    hosts: endpoints,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 2000 }),
  });
}

describe('devenv etcd cluster (real etcd, 3 members)', function () {
  this.timeout(60000);
  let cluster: EtcdCluster;
  let etcd: Etcd3;

  before(async () => {
    const t0 = Date.now();
    cluster = await startEtcdCluster({ members: 3 });
    console.log(`    three-member cluster healthy in ${Date.now() - t0} ms`);
    etcd = client(cluster.endpoints);
  });

  after(async () => {
    etcd?.close();
    await cluster?.stop();
  });

  it('starts three members with distinct loopback client URLs and one leader', async () => {
    assert.equal(cluster.members.length, 3);
    assert.equal(new Set(cluster.endpoints).size, 3);
    for (const url of cluster.endpoints) assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const leader = await cluster.leaderName();
    assert.ok(leader && ['n1', 'n2', 'n3'].includes(leader), `leader: ${leader}`);
    await etcd.put('devenv/a').value('1');
    assert.equal(await etcd.get('devenv/a').string(), '1');
  });

  it('keeps serving with one member stopped, and takes it back', async () => {
    const leader = await cluster.leaderName();
    const victim = cluster.members.find((m) => m.name === leader);
    assert.ok(victim);
    const t0 = Date.now();
    await victim.stop();
    assert.equal(victim.isRunning(), false);
    // Writes go through once the other two have elected a new leader.
    for (;;) {
      try {
        await etcd.put('devenv/b').value('2');
        break;
      } catch (err) {
        if (Date.now() - t0 > 10000) throw err;
      }
    }
    console.log(`    leader stopped: writes accepted again after ${Date.now() - t0} ms`);
    assert.equal(await etcd.get('devenv/b').string(), '2');
    await victim.start();
    await cluster.waitHealthy();
    assert.equal(await victim.healthy(), true);
  });

  it('has no quorum with a majority stopped, and recovers with its data', async () => {
    const [a, b] = cluster.members;
    assert.ok(a && b);
    await a.stop();
    await b.kill();
    const t0 = Date.now();
    await assert.rejects(etcd.put('devenv/c').value('3').exec());
    console.log(`    no quorum: put failed after ${Date.now() - t0} ms`);
    const alone = cluster.members[2];
    assert.ok(alone);
    assert.equal(await alone.healthy(), false);
    await a.start();
    await b.start();
    const t1 = Date.now();
    await cluster.waitHealthy();
    console.log(`    majority back: healthy after ${Date.now() - t1} ms`);
    assert.equal(await etcd.get('devenv/a').string(), '1');
    assert.equal(await etcd.get('devenv/b').string(), '2');
  });

  it('leaves no process behind after stop()', async () => {
    const extra = await startEtcdCluster({ members: 1 });
    const pids = extra.pids();
    assert.equal(pids.length, 1);
    await extra.stop();
    for (const pid of pids) assert.equal(pidAlive(pid), false, `pid ${pid} still alive`);
    const ours = cluster.pids();
    assert.equal(ours.length, 3);
    await cluster.stop();
    for (const pid of ours) assert.equal(pidAlive(pid), false, `pid ${pid} still alive`);
  });
});
