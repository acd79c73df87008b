// Cluster mode end to end: three real sidecars (`acme-sidecar run`), each
// beside its own real nginx with its own webroot and STATE_DIR, all on one
// real three-member etcd, ordering from real Pebble.
//
// Pebble validates HTTP-01 on one port: node1's nginx. Every token must
// nevertheless reach all three webroots (the leader checks each replica's
// nginx before telling the CA), which the test watches on disk.
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { appendFile, chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { startEtcdCluster, type EtcdCluster } from '../../devenv/etcd.js';
import { httpGet } from '../../devenv/http.js';
import { startNginx, type NginxInstance } from '../../devenv/nginx.js';
import { freePorts } from '../../devenv/proc.js';
import { chainVerifiesTo } from '../../src/util/x509.js';
import {
  recordOutput,
  registerSecret,
  runSidecar,
  sidecarEnv,
  startSidecar,
} from '../support/sidecar.js';

const TTL = 3;
const CLUSTER = 'e2e';

interface Sidecar {
  name: string;
  env: Record<string, string>;
  child?: ChildProcess;
  logs: Record<string, unknown>[];
  stateDir: string;
  webroot: string;
  nginx: NginxInstance;
  statusPort: number;
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

function run(s: Sidecar): void {
  const child = startSidecar(['run'], s.env);
  s.child = child;
  let buf = '';
  let all = '';
  child.stderr?.on('data', (d: Buffer) => {
    const text = d.toString();
    all += text;
    buf += text;
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) {
      if (!l.startsWith('{')) continue;
      try {
        s.logs.push({ ...(JSON.parse(l) as Record<string, unknown>), at: Date.now() });
      } catch {
        /* not ours */
      }
    }
  });
  child.stdout?.on('data', (d: Buffer) => (all += d.toString()));
  child.on('close', () => recordOutput(all));
}

async function liveSerial(s: Sidecar, name: string): Promise<string | undefined> {
  try {
    const pem = await readFile(path.join(s.stateDir, 'live', name, 'cert.pem'), 'utf8');
    return new X509Certificate(pem).serialNumber;
  } catch {
    return undefined;
  }
}

async function liveFromStaging(s: Sidecar, name: string, root: string): Promise<boolean> {
  try {
    const full = await readFile(path.join(s.stateDir, 'live', name, 'fullchain.pem'), 'utf8');
    return chainVerifiesTo(full, root);
  } catch {
    return false;
  }
}

async function status(s: Sidecar): Promise<{
  certificates: { name: string; ready: boolean; phase: string; serial: string | null }[];
  cluster?: {
    node: string;
    role: string;
    leader: string | null;
    replicas: {
      name: string;
      inSync: boolean;
      lagSeconds: number;
      lastApplyLagMs: number | null;
    }[];
  };
}> {
  const r = await httpGet(s.statusPort, '127.0.0.1', '/status');
  return JSON.parse(r.body) as Awaited<ReturnType<typeof status>>;
}

describe('e2e: cluster mode, three sidecars on real etcd, nginx and Pebble', function () {
  this.timeout(180_000);
  let env: DevEnv;
  let etcd: EtcdCluster;
  let stagingRoot: string;
  let domainsFile: string;
  const nodes: Sidecar[] = [];
  const figures: string[] = [];
  /** Token file names seen in each node's webroot, with when. */
  const tokensSeen = new Map<string, Map<string, number>>();
  let watching = true;

  const running = () =>
    nodes.filter((n) => n.child && n.child.exitCode === null && !n.child.killed);
  const allLogs = (): Record<string, unknown>[] =>
    nodes.flatMap((n) => n.logs.map((l) => ({ ...l, node: n.name })));
  const ordersFor = (cert: string) =>
    allLogs().filter((l) => l.message === 'ordering certificate' && l.cert === cert);
  /** Orders the CA created for `cert`: distinct order URLs the sidecars placed. */
  const caOrdersFor = (cert: string) =>
    new Set(
      allLogs()
        .filter((l) => l.message === 'order placed' && l.cert === cert)
        .map((l) => l.order),
    ).size;
  const resumedFor = (cert: string) =>
    allLogs().filter(
      (l) =>
        l.message === 'resuming the order a previous attempt left in flight' && l.cert === cert,
    );
  /** Orders in the staging Pebble's database, as it logs them. */
  async function pebbleOrders(): Promise<number> {
    const text = await readFile(path.join(env.dir, 'pebble-staging.log'), 'utf8');
    const counts = [...text.matchAll(/There are now (\d+) orders in the db/g)].map((m) =>
      Number(m[1]),
    );
    return Math.max(0, ...counts);
  }
  const issuedFor = (cert: string) =>
    allLogs().filter((l) => l.message === 'certificate issued' && l.cert === cert);
  async function leader(): Promise<Sidecar | undefined> {
    for (const n of running()) {
      const s = await status(n).catch(() => undefined);
      if (s?.cluster?.role === 'leader') return n;
    }
    return undefined;
  }
  async function addCertificate(name: string): Promise<void> {
    await appendFile(domainsFile, `${name}\n`);
  }
  /**
   * Each test builds the state it needs with these two, so none depends on
   * another having run (any one runs alone with -g). Both are no-ops when
   * the state is already there.
   *
   * The three sidecars running, with a leader and three registered replicas.
   * From a cold start node2 starts first, so it leads: the node killed later
   * is not the one whose nginx Pebble validates against (a load balancer
   * whose sidecar is dead cannot answer challenges; it belongs out of
   * rotation). Returns how long the start took when it started any.
   */
  async function ensureCluster(): Promise<number | undefined> {
    if (running().length === nodes.length && (await leader())) return undefined;
    const t0 = Date.now();
    if (running().length === 0) {
      run(nodes[1]!);
      await until('node2 to lead', async () => (await leader()) === nodes[1]);
    }
    for (const n of nodes) if (!running().includes(n)) run(n);
    // The leader checks the replicas registered when it orders: all three first.
    await until('three registered replicas', async () => {
      const l = await leader();
      const st = l && (await status(l).catch(() => undefined));
      return st?.cluster?.replicas.length === 3;
    });
    return Date.now() - t0;
  }
  /** Each certificate asked for and on every running replica, from the staging CA. */
  async function ensureCertificates(names: readonly string[]): Promise<void> {
    await ensureCluster();
    const listed = (await readFile(domainsFile, 'utf8')).split('\n');
    for (const name of names) if (!listed.includes(name)) await addCertificate(name);
    for (const name of names) {
      for (const n of running()) {
        await until(
          `${name} from the staging CA on ${n.name}`,
          () => liveFromStaging(n, name, stagingRoot),
          60_000,
        );
      }
    }
  }

  // Last resort if the runner exits without after(): sidecars and the extra
  // nginx would outlive it.
  const killAll = () =>
    nodes.forEach((n) => {
      n.child?.kill('SIGKILL');
      if (n.nginx !== env?.nginx) n.nginx.process.killNow();
    });
  before(async () => {
    process.once('exit', killAll);
    env = await startDevEnv();
    stagingRoot = await env.staging.getRootPem();
    etcd = await startEtcdCluster({ members: 3 });
    await etcd.waitHealthy();
    const keyFile = path.join(env.dir, 'cluster.key');
    const clusterKey = randomBytes(32).toString('base64');
    // zz-secrets-grep checks no sidecar output ever shows it.
    registerSecret(clusterKey);
    await writeFile(keyFile, clusterKey + '\n', { mode: 0o600 });
    domainsFile = path.join(env.dir, 'domains.txt');
    await writeFile(domainsFile, '# certificates\n');
    const ports = await freePorts(9);
    for (let i = 0; i < 3; i++) {
      const name = `node${i + 1}`;
      const base = path.join(env.dir, name);
      await mkdir(base, { recursive: true, mode: 0o755 });
      await chmod(base, 0o755);
      let nginx: NginxInstance;
      let webroot: string;
      let stateDir: string;
      if (i === 0) {
        // node1 is the nginx Pebble validates against.
        nginx = env.nginx;
        webroot = env.webroot;
        stateDir = env.certDir;
      } else {
        webroot = path.join(base, 'webroot');
        stateDir = path.join(base, 'state');
        await mkdir(path.join(webroot, '.well-known', 'acme-challenge'), {
          recursive: true,
          mode: 0o755,
        });
        await mkdir(path.join(base, 'nginx'), { recursive: true });
        nginx = await startNginx({
          dir: path.join(base, 'nginx'),
          httpPort: ports[2 * i] as number,
          httpsPort: ports[2 * i + 1] as number,
          webroot,
          certDir: stateDir,
          httpOnly: true,
        });
      }
      const statusPort = ports[6 + i] as number;
      const s: Sidecar = {
        name,
        logs: [],
        stateDir,
        webroot,
        nginx,
        statusPort,
        env: sidecarEnv(env, {
          STATE_DIR: stateDir,
          WEBROOT: webroot,
          SELF_CHECK_ADDRESS: `127.0.0.1:${nginx.httpPort}`,
          DOMAINS_FILE: domainsFile,
          LOOP_TIME: '5',
          STATUS_ADDRESS: `127.0.0.1:${statusPort}`,
          CLUSTER_ETCD_ENDPOINTS: etcd.endpoints.join(','),
          CLUSTER_NAME: CLUSTER,
          CLUSTER_NODE_NAME: name,
          CLUSTER_ENCRYPTION_KEY_FILE: keyFile,
          CLUSTER_LEASE_TTL: String(TTL),
        }),
      };
      nodes.push(s);
      tokensSeen.set(name, new Map());
    }
    // Watch every webroot for tokens (the CA only ever looks at node1's).
    void (async () => {
      while (watching) {
        for (const n of nodes) {
          const names = await readdir(path.join(n.webroot, '.well-known', 'acme-challenge')).catch(
            () => [] as string[],
          );
          const seen = tokensSeen.get(n.name)!;
          for (const t of names) if (!t.includes('.') && !seen.has(t)) seen.set(t, Date.now());
        }
        await sleep(5); // the sampling interval of this background watcher
      }
    })();
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    const lines = allLogs()
      .filter((l) => l.level !== 'debug')
      .slice(-60)
      .map((l) => JSON.stringify(l));
    console.log(`    last sidecar log lines:\n${lines.join('\n')}`);
  });

  after(async () => {
    watching = false;
    // CLUSTER_E2E_LOG_FILE=<file>: every sidecar's log lines, for post-mortems.
    if (process.env.CLUSTER_E2E_LOG_FILE) {
      await writeFile(
        process.env.CLUSTER_E2E_LOG_FILE,
        allLogs()
          .map((l) => JSON.stringify(l))
          .join('\n') + '\n',
      );
    }
    for (const n of nodes) {
      if (n.child && n.child.exitCode === null && n.child.signalCode === null) {
        n.child.kill('SIGTERM');
        await new Promise((r) => n.child!.once('close', r));
      }
      if (n.nginx !== env?.nginx) await n.nginx.stop();
    }
    await etcd?.stop();
    await env?.stop();
    process.removeListener('exit', killAll);
    if (figures.length) console.log(`\n    figures:\n      ${figures.join('\n      ')}`);
  });

  it('issues every certificate once, and all three replicas serve it', async () => {
    const coldStartMs = await ensureCluster();
    const t1 = Date.now();
    await addCertificate('www.demo.test');
    await addCertificate('api.demo.test');
    for (const cert of ['www.demo.test', 'api.demo.test']) {
      for (const n of nodes) {
        await until(`${cert} from the staging CA on ${n.name}`, () =>
          liveFromStaging(n, cert, stagingRoot),
        );
      }
      const serials = await Promise.all(nodes.map((n) => liveSerial(n, cert)));
      assert.equal(
        new Set(serials).size,
        1,
        `${cert}: one certificate on all three: ${serials.join(' ')}`,
      );
    }
    figures.push(
      `cold start of 3 sidecars: ${coldStartMs ?? 'n/a (already running)'} ms; 2 certificates ordered and on all 3 replicas: ${Date.now() - t1} ms`,
    );
    // Deliberate: no second order may follow during this second.
    await sleep(1000);
    for (const cert of ['www.demo.test', 'api.demo.test']) {
      assert.equal(caOrdersFor(cert), 1, `${cert}: one order at the CA`);
      assert.equal(issuedFor(cert).length, 1, `${cert} issued once`);
    }
    const leaders = new Set(ordersFor('www.demo.test').map((l) => l.node));
    assert.equal(leaders.size, 1, 'one node ordered');
    const l = await until('a leader in /status', leader);
    const st = await status(l);
    assert.deepEqual(
      st.cluster?.replicas.map((r) => r.name),
      ['node1', 'node2', 'node3'],
    );
    figures.push(
      `replica apply lag (leader publish -> live/ written): ${st.cluster?.replicas
        .map((r) => `${r.name} ${r.lastApplyLagMs ?? '-'} ms`)
        .join(', ')}`,
    );
    const serial = (await liveSerial(l, 'www.demo.test'))?.toUpperCase();
    for (const n of nodes) {
      const s = await status(n);
      assert.equal(s.cluster?.leader, l.name, `${n.name} names the leader`);
      // Every replica's /status lists what it serves, ready, from the staging CA.
      const www = await until(`${n.name} /status to list www.demo.test ready`, async () => {
        const c = (await status(n)).certificates.find((x) => x.name === 'www.demo.test');
        return c?.ready ? c : undefined;
      });
      assert.equal(www.phase, 'staging', `${n.name}`);
    }
    assert.ok(serial);
  });

  it('every challenge token reached all three webroots before the CA looked', async () => {
    await ensureCertificates(['www.demo.test', 'api.demo.test']);
    const seen1 = [...tokensSeen.get('node1')!.keys()];
    assert.ok(seen1.length >= 2, `tokens seen on node1: ${seen1.length}`);
    for (const t of seen1) {
      for (const n of ['node2', 'node3']) {
        assert.ok(tokensSeen.get(n)!.has(t), `token ${t.slice(0, 8)}… reached ${n}`);
      }
    }
    figures.push(`tokens fanned out to all 3 webroots: ${seen1.length}`);
  });

  it('kill -9 of the leader in the middle of an order: a new leader completes it, the certificate is issued once', async () => {
    await ensureCluster();
    const old = await until('a leader', leader);
    const before = new Set(tokensSeen.get(old.name)!.keys());
    await addCertificate('shop.demo.test');
    // Mid-order: the order exists and its token is being fanned out.
    await until(
      'a new token for shop.demo.test',
      () => [...tokensSeen.get(old.name)!.keys()].some((t) => !before.has(t)),
      20_000,
    );
    old.child!.kill('SIGKILL');
    const killedAt = Date.now();
    const next = await until('a new leader', async () => {
      const l = await leader();
      return l && l !== old ? l : undefined;
    });
    const failoverMs = Date.now() - killedAt;
    for (const n of running()) {
      await until(`shop.demo.test on ${n.name}`, () =>
        liveFromStaging(n, 'shop.demo.test', stagingRoot),
      );
    }
    const doneMs = Date.now() - killedAt;
    const orders = ordersFor('shop.demo.test');
    const issued = issuedFor('shop.demo.test');
    figures.push(
      `failover after kill -9: new leader ${next.name} in ${failoverMs} ms; order completed on all replicas ${doneMs} ms after the kill (TTL ${TTL} s)`,
    );
    figures.push(
      `shop.demo.test: attempts ${orders.length} (${orders.map((o) => o.node).join(', ')}), orders at the CA ${caOrdersFor('shop.demo.test')}, resumed by ${
        resumedFor('shop.demo.test')
          .map((r) => r.node)
          .join(', ') || 'nobody'
      }, certificates issued ${issued.length}`,
    );
    assert.equal(issued.length, 1, 'issued once');
    assert.equal(
      caOrdersFor('shop.demo.test'),
      1,
      'one order at the CA: the new leader resumed it',
    );
    assert.equal(
      orders.filter((o) => o.node === next.name).length,
      1,
      'the new leader ordered once',
    );
    // The killed node comes back as a replica and catches up.
    run(old);
    await until(`shop.demo.test on ${old.name} after restart`, () =>
      liveFromStaging(old, 'shop.demo.test', stagingRoot),
    );
  });

  it('one etcd member down (the etcd leader): no interruption, a new certificate is issued everywhere', async () => {
    await ensureCluster();
    const l = await until('a leader', leader);
    const stopsBefore = allLogs().filter((x) => x.message === 'stopped acting as leader').length;
    const etcdLeader = await etcd.leaderName();
    const member = etcd.members.find((m) => m.name === etcdLeader) ?? etcd.members[0]!;
    await member.stop();
    try {
      const t0 = Date.now();
      await addCertificate('one.demo.test');
      for (const n of running()) {
        await until(`one.demo.test on ${n.name}`, () =>
          liveFromStaging(n, 'one.demo.test', stagingRoot),
        );
      }
      figures.push(
        `etcd member ${member.name} (etcd leader) down: new certificate on all replicas in ${Date.now() - t0} ms`,
      );
      assert.equal(await leader(), l, 'the same sidecar still leads');
      assert.equal(
        allLogs().filter((x) => x.message === 'stopped acting as leader').length,
        stopsBefore,
        'no sidecar stopped acting',
      );
      assert.equal(ordersFor('one.demo.test').length, 1);
    } finally {
      await member.start();
      await etcd.waitHealthy();
    }
  });

  it('a majority of etcd down: every sidecar keeps serving, nothing is ordered; all recover when etcd returns', async () => {
    await ensureCertificates(['www.demo.test']);
    const l = await until('a leader', leader);
    const serving = await Promise.all(running().map((n) => liveSerial(n, 'www.demo.test')));
    const down = etcd.members.filter((m) => m.name !== 'n1');
    await Promise.all(down.map((m) => m.kill()));
    const t0 = Date.now();
    try {
      await until(
        'the leader to stop acting',
        () =>
          l.logs.some((x) => x.message === 'stopped acting as leader' && (x.at as number) >= t0),
        TTL * 1000 + 3000,
      );
      figures.push(`quorum lost -> leader stops acting: ${Date.now() - t0} ms (TTL ${TTL} s)`);
      await addCertificate('late.demo.test');
      // Deliberate: nothing may be ordered during two TTLs without quorum.
      await sleep(TTL * 1000 * 2);
      assert.equal(ordersFor('late.demo.test').length, 0, 'nothing ordered without quorum');
      for (const n of running()) {
        assert.equal(await liveSerial(n, 'www.demo.test'), serving[running().indexOf(n)]);
        const h = await httpGet(n.statusPort, '127.0.0.1', '/healthz');
        assert.equal(h.status, 200, `${n.name} answers /healthz`);
        const st = await status(n);
        assert.equal(st.cluster?.role, 'follower', `${n.name} does not act`);
      }
    } finally {
      await Promise.all(down.map((m) => m.start()));
    }
    await etcd.waitHealthy();
    const back = Date.now();
    for (const n of running()) {
      await until(
        `late.demo.test on ${n.name} after etcd returned`,
        () => liveFromStaging(n, 'late.demo.test', stagingRoot),
        60_000,
      );
    }
    figures.push(`quorum back -> the waiting certificate on all replicas: ${Date.now() - back} ms`);
    assert.equal(caOrdersFor('late.demo.test'), 1, 'one order at the CA');
  });

  it('a replica with another CLUSTER_ENCRYPTION_KEY_FILE refuses to start (exit 2), writing nothing', async () => {
    await ensureCluster();
    const wrongKey = path.join(env.dir, 'wrong.key');
    const other = randomBytes(32).toString('base64');
    registerSecret(other);
    await writeFile(wrongKey, other + '\n', { mode: 0o600 });
    const stateDir = path.join(env.dir, 'node4');
    await mkdir(stateDir, { recursive: true });
    const r = await runSidecar(
      ['run'],
      {
        ...nodes[0]!.env,
        STATE_DIR: stateDir,
        STATUS_ADDRESS: 'off',
        CLUSTER_NODE_NAME: 'node4',
        CLUSTER_ENCRYPTION_KEY_FILE: wrongKey,
      },
      30_000,
    );
    assert.equal(r.code, 2, r.stderr.slice(-2000));
    assert.match(r.stderr, /STORE_DECRYPT_FAILED|key/i);
    const st = await status((await until('a leader', leader))!);
    assert.ok(!st.cluster?.replicas.some((x) => x.name === 'node4'), 'node4 never registered');
  });

  it('etcd holds no private key in the clear', async () => {
    const certs = [
      'www.demo.test',
      'api.demo.test',
      'shop.demo.test',
      'one.demo.test',
      'late.demo.test',
    ];
    await ensureCertificates(certs);
    const client = new Etcd3({ hosts: etcd.endpoints });
    try {
      const all = await client.getAll().prefix(`/acme-sidecar/${CLUSTER}/`).buffers();
      const dump = Buffer.concat(
        Object.entries(all).flatMap(([k, v]) => [Buffer.from(k), Buffer.from('\n'), v]),
      );
      assert.ok(
        Object.keys(all).length > 10,
        `etcd holds the cluster's state (${Object.keys(all).length} keys)`,
      );
      assert.ok(!dump.includes('PRIVATE KEY'), 'no PEM private key');
      for (const n of running()) {
        for (const cert of ['www.demo.test', 'api.demo.test', 'shop.demo.test']) {
          const key = await readFile(path.join(n.stateDir, 'live', cert, 'privkey.pem'), 'utf8');
          const der = Buffer.from(key.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
          assert.ok(!dump.includes(der), `${cert} key (DER) not in etcd`);
          assert.ok(
            !dump.includes(der.toString('base64').slice(0, 40)),
            `${cert} key (base64) not in etcd`,
          );
        }
      }
    } finally {
      client.close();
    }
    // Sync lag as each replica reports it, from the leader's /status.
    const l = await until('a leader', leader);
    const st = await status(l);
    figures.push(
      `replica sync at the end: ${st.cluster?.replicas
        .map(
          (r) =>
            `${r.name} inSync=${r.inSync} lag=${r.lagSeconds}s lastApply=${r.lastApplyLagMs ?? '-'}ms`,
        )
        .join('; ')}`,
    );
    figures.push(
      `orders at the CA per certificate: ${certs.map((c) => `${c} ${caOrdersFor(c)}`).join(', ')}; issued: ${certs.map((c) => `${c} ${issuedFor(c).length}`).join(', ')}; attempts: ${certs.map((c) => `${c} ${ordersFor(c).length}`).join(', ')}; Pebble's order count: ${await pebbleOrders()}`,
    );
    assert.equal(await pebbleOrders(), certs.length, 'the CA saw one order per certificate');
  });
});
