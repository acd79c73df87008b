// Cluster coordination (src/cluster/) in one process against a real
// three-member etcd and three real nginx: election, the lease fence, replica
// materialization of live/, and challenge fan-out. The shared CertStore here
// is an FsCertStore directory all three nodes use; test/e2e/cluster.test.ts
// runs whole sidecars on the etcd store.
import assert from 'node:assert/strict';
import { X509Certificate, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, chmod } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { startEtcdCluster, type EtcdCluster } from '../../devenv/etcd.js';
import { startNginx, type NginxInstance } from '../../devenv/nginx.js';
import { freePorts } from '../../devenv/proc.js';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { WebrootResponder } from '../../src/challenge/webroot-responder.js';
import { Cluster } from '../../src/cluster/cluster.js';
import { LiveDir } from '../../src/deploy/live-dir.js';
import { etcdClientOptions } from '../../src/store/etcd-config.js';
import { systemClock } from '../../src/lifecycle/clock.js';
import { storedKey } from '../../src/store/keys.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { Keyring } from '../../src/store/sealed-value.js';
import { createLogger, silentLogger, type LogFields, type Logger } from '../../src/util/log.js';
import { describeBundle } from '../../src/util/x509.js';

const TTL = 3;
/** A healed node follows the leader within this long (bounded reconnect backoff, plus load). */
const REJOIN_WITHIN_MS = 6_000;
/** How long the partitioned leader stays cut off (several TTLs). */
const PARTITION_MS = 12_000;
const PREFIX = 'acme-sidecar/test/cluster/';
/** The cluster key every node shares (CLUSTER_ENCRYPTION_KEY_FILE). */
const keyring = Keyring.fromKeys([randomBytes(32)]);
/** CLUSTER_TEST_LOG=1 shows every node's cluster log (text, debug) on stderr. */
const baseLog = process.env.CLUSTER_TEST_LOG
  ? createLogger({ level: 'debug', format: 'text' })
  : silentLogger;

/** Every warning any node logged, with the fields of its logger's children. */
const warnings: { node: string; msg: string; fields: LogFields }[] = [];
function recording(node: string, inner: Logger, fields: LogFields = {}): Logger {
  return {
    error: (m, f) => inner.error(m, f),
    warn: (m, f) => {
      warnings.push({ node, msg: m, fields: { ...fields, ...f } });
      inner.warn(m, f);
    },
    info: (m, f) => inner.info(m, f),
    debug: (m, f) => inner.debug(m, f),
    child: (f) => recording(node, inner.child(f), { ...fields, ...f }),
  };
}

/**
 * A TCP proxy in front of one etcd member; each node reaches each member
 * through its own. Cutting all of a node's proxies is a network partition
 * between that node and etcd (every connection dropped, new ones refused).
 */
async function partitionableProxy(endpoint: string) {
  const sockets = new Set<net.Socket>();
  let cut = false;
  const targets = [new URL(endpoint)];
  const server = net.createServer((client) => {
    if (cut) return client.destroy();
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    const tryTarget = (i: number) => {
      const t = targets[i];
      if (!t) return client.destroy();
      const upstream = net.connect(Number(t.port), t.hostname);
      upstream.once('error', () => {
        if (!upstream.readableEnded && upstream.bytesWritten === 0) tryTarget(i + 1);
        else client.destroy();
      });
      upstream.once('connect', () => {
        sockets.add(upstream);
        upstream.on('close', () => sockets.delete(upstream));
        client.pipe(upstream).pipe(client);
        client.on('error', () => upstream.destroy());
        upstream.removeAllListeners('error');
        upstream.on('error', () => client.destroy());
      });
    };
    tryTarget(0);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    cut() {
      cut = true;
      for (const s of sockets) s.destroy();
    },
    heal() {
      cut = false;
    },
    close: () =>
      new Promise<void>((r) => {
        cut = true;
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

interface Node {
  name: string;
  proxies: Awaited<ReturnType<typeof partitionableProxy>>[];
  client: Etcd3;
  cluster: Cluster;
  live: LiveDir;
  webroot: string;
  nginx: NginxInstance;
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  ms = 15_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('e2e: cluster coordination on real etcd and nginx', function () {
  this.timeout(120_000);
  let etcd: EtcdCluster;
  let dir: string;
  let store: FsCertStore;
  const nodes: Node[] = [];
  const figures: string[] = [];

  async function startNode(
    name: string,
    nginx: NginxInstance,
    webroot: string,
    stateDir: string,
  ): Promise<Node> {
    const proxies = await Promise.all(etcd.endpoints.map((e) => partitionableProxy(e)));
    // The product's client options (deadlines, reconnect backoff), as the sidecar builds them.
    const client = new Etcd3(
      etcdClientOptions({
        clusterEtcdEndpoints: proxies.map((p) => p.url),
        clusterName: 'test',
        clusterLeaseTtlSeconds: TTL,
      }),
    );
    const live = new LiveDir(stateDir);
    const local = new WebrootResponder({ webroot, selfCheck: true, log: silentLogger });
    const cluster = new Cluster({
      client,
      prefix: PREFIX,
      keyring,
      nodeName: name,
      ttlSeconds: TTL,
      selfCheckAddress: `127.0.0.1:${nginx.httpPort}`,
      selfCheck: true,
      store,
      live,
      webroot: local,
      clock: systemClock,
      log: recording(name, baseLog.child({ node: name })),
    });
    cluster.start();
    return { name, proxies, client, cluster, live, webroot, nginx };
  }

  // Last resort if the runner exits without after(): nginx runs in its own process group.
  const killAll = () => nodes.forEach((n) => n.nginx.process.killNow());
  before(async () => {
    process.once('exit', killAll);
    etcd = await startEtcdCluster({ members: 3 });
    await etcd.waitHealthy();
    dir = await mkdtemp(path.join(os.tmpdir(), 'acme-cluster-coord-'));
    await chmod(dir, 0o755);
    store = new FsCertStore(path.join(dir, 'shared'));
    const ports = await freePorts(6);
    for (let i = 0; i < 3; i++) {
      const name = `node${i + 1}`;
      const webroot = path.join(dir, name, 'webroot');
      await mkdir(path.join(webroot, '.well-known', 'acme-challenge'), {
        recursive: true,
        mode: 0o755,
      });
      await chmod(path.join(dir, name), 0o755);
      await mkdir(path.join(dir, name, 'nginx'), { recursive: true });
      const nginx = await startNginx({
        dir: path.join(dir, name, 'nginx'),
        httpPort: ports[2 * i] as number,
        httpsPort: ports[2 * i + 1] as number,
        webroot,
        certDir: path.join(dir, name, 'state'),
        httpOnly: true,
      });
      nodes.push(await startNode(name, nginx, webroot, path.join(dir, name, 'state')));
    }
  });

  after(async () => {
    for (const n of nodes) {
      await n.cluster.stop().catch(() => undefined);
      n.client.close();
      await Promise.all(n.proxies.map((p) => p.close()));
      await n.nginx.stop();
    }
    await etcd?.stop();
    process.removeListener('exit', killAll);
    if (dir) await rm(dir, { recursive: true, force: true });
    if (figures.length) console.log(`\n    figures:\n      ${figures.join('\n      ')}`);
  });

  const leaders = () => nodes.filter((n) => n.cluster.leadership().mayAct);

  it('elects exactly one leader, and every node names it', async () => {
    const leader = await until('a leader', () =>
      leaders().length === 1 ? leaders()[0] : undefined,
    );
    await until('every node to name the leader', () =>
      nodes.every((n) => n.cluster.status().leader === leader.name),
    );
    // Deliberate: nothing may change during a full TTL (no second leader).
    await sleep(TTL * 1000);
    assert.equal(leaders().length, 1, 'still exactly one leader after a full TTL');
    assert.deepEqual(nodes.map((n) => n.cluster.status().role).sort(), [
      'follower',
      'follower',
      'leader',
    ]);
  });

  /**
   * The leader publishes a fresh self-signed `www` and waits until every
   * replica's live/ holds it. Returns the bundle and how long that took.
   */
  async function publishWww(leader: Node) {
    const spec = { name: 'www', domains: ['www.demo.test'], source: 'test' };
    const bundle = await new SelfSignedIssuer(systemClock).issue(spec, 'ecdsa-p256');
    const meta = describeBundle(bundle, {
      name: 'www',
      phase: 'self-signed',
      directoryUrl: '',
      keyType: 'ecdsa-p256',
      issuedAt: new Date(),
    });
    await store.store(storedKey('www', 'self-signed'), JSON.stringify({ meta, bundle }), {
      secret: true,
    });
    const t0 = Date.now();
    await leader.cluster.liveTarget.write('www', bundle);
    const serial = new X509Certificate(bundle.cert).serialNumber;
    for (const n of nodes) {
      const got = await until(`live/www on ${n.name}`, async () => {
        const b = await n.live.read('www');
        return b && new X509Certificate(b.cert).serialNumber === serial ? b : undefined;
      });
      assert.equal(got.privkey, bundle.privkey, `${n.name} has the matching key`);
    }
    return { bundle, syncMs: Date.now() - t0 };
  }

  it('materializes what the leader publishes on every replica, atomically, with its key', async () => {
    const leader = await until('a leader', () => leaders()[0]);
    const { bundle, syncMs } = await publishWww(leader);
    figures.push(`replica sync lag (publish -> live/ on all 3): ${syncMs} ms`);
    // A follower cannot publish: the write is fenced on the leader's election key.
    const follower = nodes.find((n) => n !== leader)!;
    await assert.rejects(follower.cluster.liveTarget.write('www', bundle), {
      code: 'CLUSTER_NOT_LEADER',
    });
    await until(
      'every replica to report in sync',
      () =>
        leader.cluster.status().replicas.length === 3 &&
        leader.cluster.status().replicas.every((r) => r.inSync),
    );
  });

  it('a pending token reaches all three webroots, verify() sees it through each nginx, cleanup removes it everywhere', async () => {
    const leader = await until('a leader', () => leaders()[0]);
    const token = 'tok_' + 'A'.repeat(40);
    const keyAuth = `${token}.thumbprint`;
    const t0 = Date.now();
    await leader.cluster.responder.present('www.demo.test', token, keyAuth);
    await leader.cluster.responder.verify('www.demo.test', token, keyAuth);
    figures.push(`token fan-out (present -> served by all 3 nginx): ${Date.now() - t0} ms`);
    for (const n of nodes) {
      const file = path.join(n.webroot, '.well-known', 'acme-challenge', token);
      assert.equal(await readFile(file, 'utf8'), keyAuth, `${n.name} webroot`);
    }
    await leader.cluster.responder.cleanup('www.demo.test', token);
    for (const n of nodes) {
      const file = path.join(n.webroot, '.well-known', 'acme-challenge', token);
      await until(`token removed on ${n.name}`, () =>
        readFile(file).then(
          () => false,
          () => true,
        ),
      );
    }
  });

  it('verify() refuses, naming the replica, when one nginx does not serve the token', async () => {
    const leader = await until('a leader', () => leaders()[0]);
    const other = nodes.find((n) => n !== leader)!;
    await other.nginx.stop();
    const token = 'tok_' + 'B'.repeat(40);
    const keyAuth = `${token}.thumbprint`;
    await leader.cluster.responder.present('www.demo.test', token, keyAuth);
    await assert.rejects(
      // The default timeout is TTL + 10 s; this is the path a real order takes.
      leader.cluster.responder.verify('www.demo.test', token, keyAuth),
      (err: Error & { code?: string }) =>
        err.code === 'CLUSTER_FANOUT_FAILED' && err.message.includes(other.name),
    );
    await leader.cluster.responder.cleanup('www.demo.test', token);
    other.nginx = await startNginx({
      dir: other.nginx.prefixDir,
      httpPort: other.nginx.httpPort,
      httpsPort: other.nginx.httpsPort,
      webroot: other.webroot,
      certDir: other.nginx.certDir,
      httpOnly: true,
    });
  });

  it('a hostile etcd writer without the cluster key changes nothing any replica serves', async () => {
    const leader = await until('a leader', () => leaders()[0]);
    const { bundle: served } = await publishWww(leader);
    const servedSerial = new X509Certificate(served.cert).serialNumber;
    // A real staging `www` in the store: what a forged pointer would roll live/ to.
    const spec = { name: 'www', domains: ['www.demo.test'], source: 'test' };
    const older = await new SelfSignedIssuer(systemClock).issue(spec, 'ecdsa-p256');
    const olderMeta = describeBundle(older, {
      name: 'www',
      phase: 'staging',
      directoryUrl: '',
      keyType: 'ecdsa-p256',
      issuedAt: new Date(),
    });
    await store.store(
      storedKey('www', 'staging'),
      JSON.stringify({ meta: olderMeta, bundle: older }),
      { secret: true },
    );
    // A genuine pending token, whose sealed value the attacker replays under another token.
    const genuine = 'tok_' + 'C'.repeat(40);
    await leader.cluster.responder.present('www.demo.test', genuine, `${genuine}.thumbprint`);
    await leader.cluster.responder.verify('www.demo.test', genuine, `${genuine}.thumbprint`);

    const hostile = new Etcd3({ hosts: etcd.endpoints });
    const ns = hostile.namespace(PREFIX);
    const genuinePointer = (await ns.get('live/www').buffer())!;
    const genuineToken = (await ns.get(`challenges/${genuine}`).buffer())!;
    const genuineNode = (await ns.get(`nodes/${leader.name}`).buffer())!;
    const planted = 'tok_' + 'E'.repeat(40);
    const moved = 'tok_' + 'M'.repeat(40);
    const since = warnings.length;
    try {
      // Plain JSON, shaped exactly like what the sidecar writes:
      await ns
        .put(`challenges/${planted}`)
        .value(
          JSON.stringify({ domain: 'www.demo.test', keyAuthorization: `${planted}.attacker` }),
        );
      await ns.put('live/www').value(
        JSON.stringify({
          serial: olderMeta.serial.toUpperCase(),
          at: new Date().toISOString(),
          by: leader.name,
          phase: 'staging',
        }),
      );
      await ns.put('nodes/evil').value(
        JSON.stringify({
          name: 'evil',
          seenAt: new Date().toISOString(),
          selfCheckAddress: '127.0.0.1:9',
        }),
      );
      // Genuine sealed values, replayed under other keys:
      await ns.put(`challenges/${moved}`).value(genuineToken);
      await ns.put('live/api').value(genuinePointer);
      await ns.put('nodes/zz-evil').value(genuineNode);

      const refusedOn = (node: string, key: string) =>
        warnings
          .slice(since)
          .some(
            (w) =>
              w.node === node && w.fields.key === key && w.fields.code === 'STORE_DECRYPT_FAILED',
          );
      for (const n of nodes) {
        for (const key of [
          `coord/challenges/${planted}`,
          `coord/challenges/${moved}`,
          'coord/live/www',
          'coord/live/api',
        ]) {
          await until(`${n.name} to refuse ${key}`, () => refusedOn(n.name, key));
        }
      }
      // The leader's replica list (the fan-out's targets) holds only the real nodes.
      const listed = await leader.cluster.registry.list();
      assert.deepEqual(
        listed.map((r) => [r.name, r.selfCheckAddress]),
        nodes
          .map((n) => [n.name, `127.0.0.1:${n.nginx.httpPort}`])
          .sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
      );
      assert.ok(refusedOn(leader.name, 'coord/nodes/evil'), 'the planted node record is logged');
      assert.ok(refusedOn(leader.name, 'coord/nodes/zz-evil'), 'the moved node record is logged');
      // A real token still fans out to exactly the real replicas.
      const after = 'tok_' + 'D'.repeat(40);
      await leader.cluster.responder.present('www.demo.test', after, `${after}.thumbprint`);
      await leader.cluster.responder.verify('www.demo.test', after, `${after}.thumbprint`);
      await leader.cluster.responder.cleanup('www.demo.test', after);
      for (const n of nodes) {
        const dir = path.join(n.webroot, '.well-known', 'acme-challenge');
        for (const t of [planted, moved]) {
          await assert.rejects(readFile(path.join(dir, t)), `${n.name} does not serve ${t}`);
        }
        const www = await n.live.read('www');
        assert.equal(
          www && new X509Certificate(www.cert).serialNumber,
          servedSerial,
          `${n.name} still serves the published www`,
        );
        assert.equal(await n.live.read('api'), undefined, `${n.name} has no live/api`);
      }
    } finally {
      await ns.delete().key(`challenges/${planted}`);
      await ns.delete().key(`challenges/${moved}`);
      await ns.delete().key('live/api');
      await ns.delete().key('nodes/evil');
      await ns.delete().key('nodes/zz-evil');
      await ns.put('live/www').value(genuinePointer);
      await leader.cluster.responder.cleanup('www.demo.test', genuine);
      await store.delete(storedKey('www', 'staging'));
      hostile.close();
    }
  });

  it('a leader cut off from etcd stops acting before its lease can expire; one member down changes nothing', async () => {
    const leader = await until('a leader', () => leaders()[0]);
    // Its own state: something published, to check live/ keeps serving it.
    await publishWww(leader);
    // One member down: quorum stays, the leader keeps acting without a gap.
    const one = etcd.members[0]!;
    await one.stop();
    const gapUntil = Date.now() + TTL * 1000 * 2;
    while (Date.now() < gapUntil) {
      assert.ok(leader.cluster.leadership().mayAct, 'leader kept acting with one etcd member down');
      // Deliberate: sampling that nothing changes for two TTLs.
      await sleep(100);
    }
    await one.start();
    await etcd.waitHealthy();
    // A majority down: no quorum. The leader's term signal must fire within the TTL.
    const signal = leader.cluster.leadership().signal!;
    assert.ok(signal && !signal.aborted);
    await Promise.all([etcd.members[1]!.kill(), etcd.members[2]!.kill()]);
    const t0 = Date.now();
    await until('the leader to stop acting', () => signal.aborted, TTL * 1000 + 5000);
    const stopMs = Date.now() - t0;
    figures.push(`leader stops acting after quorum loss: ${stopMs} ms (TTL ${TTL * 1000} ms)`);
    // etcd itself needs an election timeout to notice; no successor can be
    // elected before quorum returns and a full TTL passes after that.
    assert.ok(stopMs < TTL * 1000 + 1000, `stopped within the TTL (${stopMs} ms)`);
    // Nobody acts while etcd has no quorum, and live/ keeps serving
    // (deliberate: nothing may happen during this second).
    await sleep(1000);
    assert.equal(leaders().length, 0);
    for (const n of nodes) assert.ok(await n.live.read('www'), `${n.name} still serves www`);
    await Promise.all([etcd.members[1]!.start(), etcd.members[2]!.start()]);
    await etcd.waitHealthy();
    const back = Date.now();
    await until('a leader again', () => (leaders().length === 1 ? true : undefined), 30_000);
    figures.push(`leader acting again after quorum returns: ${Date.now() - back} ms`);
  });

  it('a leader whose election key is deleted by hand stops acting, and one other node leads', async () => {
    const old = await until('a leader', () => leaders()[0]);
    const admin = new Etcd3({ hosts: etcd.endpoints });
    try {
      const keys = await admin
        .getAll()
        .prefix('acme-sidecar/test/cluster/election/')
        .sort('Create', 'Ascend')
        .keys();
      const t0 = Date.now();
      await admin.delete().key(keys[0]!);
      await until('the old leader to stop', () => !old.cluster.leadership().mayAct, TTL * 1000);
      figures.push(`election key deleted -> its holder stops acting: ${Date.now() - t0} ms`);
      await until('one new leader', () =>
        leaders().length === 1 && leaders()[0] !== old ? true : undefined,
      );
      // Deliberate: no second leader appears in the next half second.
      await sleep(500);
      assert.equal(leaders().length, 1);
    } finally {
      admin.close();
    }
  });

  it('a leader partitioned from etcd stops acting, and another takes over within about the TTL; never two at once', async () => {
    const old = await until('a leader', () => leaders()[0]);
    let most = 1;
    const sampler = setInterval(() => (most = Math.max(most, leaders().length)), 10);
    const t0 = Date.now();
    old.proxies.forEach((p) => p.cut());
    try {
      await until(
        'the old leader to stop',
        () => !old.cluster.leadership().mayAct,
        TTL * 1000 + 1000,
      );
      const stoppedMs = Date.now() - t0;
      const next = await until(
        'a new leader',
        () => leaders().find((n) => n !== old),
        TTL * 1000 * 4,
      );
      const ms = Date.now() - t0;
      figures.push(
        `failover (leader partitioned -> it stops: ${stoppedMs} ms; new leader ${next.name} acting: ${ms} ms; TTL ${TTL * 1000} ms)`,
      );
      assert.ok(stoppedMs < TTL * 1000, `old leader stopped after ${stoppedMs} ms`);
      assert.ok(ms < TTL * 1000 * 3, `failover took ${ms} ms`);
      assert.equal(most, 1, 'never two nodes acting at once');
      // A longer cut, as under load or in a real outage: reconnect backoffs
      // grow with it, and must not make the rejoin below slower.
      await sleep(Math.max(0, t0 + PARTITION_MS - Date.now()));
    } finally {
      clearInterval(sampler);
      old.proxies.forEach((p) => p.heal());
    }
    const healedAt = Date.now();
    // Back in touch, it follows the new leader within a few seconds of the heal,
    // however long the partition lasted (reconnect backoff is bounded).
    await until(
      'the old leader to follow',
      () =>
        old.cluster.status().leader !== old.name && old.cluster.status().leader ? true : undefined,
      REJOIN_WITHIN_MS * 3,
    );
    const rejoinMs = Date.now() - healedAt;
    figures.push(
      `rejoin (partition healed after ${healedAt - t0} ms -> old leader follows ${old.cluster.status().leader}: ${rejoinMs} ms)`,
    );
    assert.ok(rejoinMs < REJOIN_WITHIN_MS, `the old leader rejoined ${rejoinMs} ms after the heal`);
    assert.equal(leaders().length, 1);
  });
});
