// Cluster mode with DNS-01 (issue 13, item 4): two real sidecars on one real
// etcd member, BIND 9 taking RFC 2136 updates, Pebble validating through it.
//
// With HTTP-01 the leader publishes each token under coord/challenges/ and
// waits until every replica's nginx serves it. DNS-01 needs no token on any
// replica: the leader writes the TXT record and asks the CA, nothing else.
// Here neither replica has an nginx at its SELF_CHECK_ADDRESS (a closed
// port), so the HTTP-01 fan-out could not succeed, and a watch on
// coord/challenges/ must see nothing while the wildcard is ordered.
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Etcd3, type Watcher } from 'etcd3';
import { digTxt, startBind, type BindInstance } from '../../devenv/bind.js';
import { startEtcdCluster, type EtcdCluster } from '../../devenv/etcd.js';
import { httpGet } from '../../devenv/http.js';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { freePorts } from '../../devenv/proc.js';
import { CHALLENGES_PREFIX, clusterKeyLayout } from '../../src/store/keys.js';
import { chainVerifiesTo } from '../../src/util/x509.js';
import { registerSecret, sidecarEnv, startSidecar, watchLogs } from '../support/sidecar.js';
import { waitFor } from '../support/wait.js';

const CLUSTER = 'dns01';
const CERT = 'wild';

interface Node {
  name: string;
  stateDir: string;
  statusPort: number;
  env: Record<string, string>;
  child?: ChildProcess;
  logs?: () => Record<string, unknown>[];
}

describe('e2e: cluster mode with DNS-01 (two sidecars, one etcd member, BIND 9, Pebble 2.9)', function () {
  this.timeout(180_000);
  let dir: string;
  let bind: BindInstance;
  let env: DevEnv;
  let etcd: EtcdCluster;
  let client: Etcd3 | undefined;
  let watcher: Watcher | undefined;
  let domainsFile: string;
  const nodes: Node[] = [];
  const challengePuts: string[] = [];

  const killAll = () => nodes.forEach((n) => n.child?.kill('SIGKILL'));
  const start = (n: Node) => {
    n.child = startSidecar(['run'], n.env);
    n.logs = watchLogs(n.child);
  };
  async function role(n: Node): Promise<string | undefined> {
    const r = await httpGet(n.statusPort, '127.0.0.1', '/status').catch(() => undefined);
    if (!r || r.status !== 200) return undefined;
    const s = JSON.parse(r.body) as { cluster?: { role: string; replicas: unknown[] } };
    return s.cluster && s.cluster.replicas.length === nodes.length ? s.cluster.role : undefined;
  }

  before(async () => {
    process.once('exit', killAll);
    dir = await mkdtemp(path.join(os.tmpdir(), 'cluster-dns01-'));
    bind = await startBind({ dir: path.join(dir, 'bind'), acmeNames: ['cluster.test'] });
    registerSecret(bind.secret);
    env = await startDevEnv({ dnsAddress: bind.address });
    etcd = await startEtcdCluster({ members: 1 });
    await etcd.waitHealthy();
    const keyFile = path.join(dir, 'cluster.key');
    const clusterKey = randomBytes(32).toString('base64');
    registerSecret(clusterKey);
    await writeFile(keyFile, clusterKey + '\n', { mode: 0o600 });
    domainsFile = path.join(dir, 'domains.txt');
    await writeFile(domainsFile, '# certificates\n');
    // Two status ports, and one port nothing listens on: each replica's
    // "nginx" for the HTTP-01 self-check, which DNS-01 must never ask.
    const [closed, ...statusPorts] = await freePorts(3);
    for (let i = 0; i < 2; i++) {
      const name = `node${i + 1}`;
      const base = path.join(dir, name);
      const stateDir = path.join(base, 'state');
      const webroot = path.join(base, 'webroot');
      await mkdir(stateDir, { recursive: true });
      await mkdir(webroot, { recursive: true });
      const statusPort = statusPorts[i] as number;
      nodes.push({
        name,
        stateDir,
        statusPort,
        env: sidecarEnv(env, {
          STATE_DIR: stateDir,
          WEBROOT: webroot,
          SELF_CHECK_ADDRESS: `127.0.0.1:${closed}`,
          DOMAINS_FILE: domainsFile,
          STATUS_ADDRESS: `127.0.0.1:${statusPort}`,
          CLUSTER_ETCD_ENDPOINTS: etcd.endpoints.join(','),
          CLUSTER_NAME: CLUSTER,
          CLUSTER_NODE_NAME: name,
          CLUSTER_ENCRYPTION_KEY_FILE: keyFile,
          CLUSTER_LEASE_TTL: '3',
          DNS_PROVIDER: 'rfc2136',
          RFC2136_NAMESERVER: bind.address,
          RFC2136_TSIG_KEY: bind.keyName,
          RFC2136_TSIG_SECRET: bind.secret,
          DNS_RESOLVERS: bind.address,
          DNS_POLLING_INTERVAL: '0.2',
        }),
      });
    }
    // Everything written under coord/challenges/ from now on.
    client = new Etcd3({ hosts: etcd.endpoints });
    watcher = await client
      .watch()
      .prefix(`${clusterKeyLayout(CLUSTER).coord}${CHALLENGES_PREFIX}`)
      .create();
    watcher.on('put', (kv) => challengePuts.push(kv.key.toString()));
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    for (const n of nodes) {
      const lines = (n.logs?.() ?? []).slice(-40).map((l) => JSON.stringify(l));
      console.log(`    ${n.name} last log lines:\n${lines.join('\n')}`);
    }
  });

  after(async () => {
    await watcher?.cancel().catch(() => undefined);
    client?.close();
    for (const n of nodes) {
      if (n.child && n.child.exitCode === null && n.child.signalCode === null) {
        n.child.kill('SIGTERM');
        await new Promise((r) => n.child!.once('close', r));
      }
    }
    process.removeListener('exit', killAll);
    await etcd?.stop();
    await env?.stop();
    await bind?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the leader issues a wildcard certificate without publishing a token or waiting for replicas, and both replicas serve it', async () => {
    for (const n of nodes) start(n);
    const leader = await waitFor(
      async () => {
        for (const n of nodes) if ((await role(n)) === 'leader') return n;
        return undefined;
      },
      { timeoutMs: 60_000, what: 'a leader with both replicas registered' },
    );
    await appendFile(domainsFile, `${CERT}=*.cluster.test+cluster.test\n`);
    const stagingRoot = await env.staging.getRootPem();
    for (const n of nodes) {
      await waitFor(
        async () => {
          const full = await readFile(path.join(n.stateDir, 'live', CERT, 'fullchain.pem'), 'utf8');
          return chainVerifiesTo(full, stagingRoot);
        },
        { timeoutMs: 90_000, what: `${CERT} from the staging CA on ${n.name}` },
      );
    }
    const serials = await Promise.all(
      nodes.map(async (n) => {
        const pem = await readFile(path.join(n.stateDir, 'live', CERT, 'cert.pem'));
        const cert = new X509Certificate(pem);
        assert.match(cert.subjectAltName ?? '', /DNS:\*\.cluster\.test/);
        return cert.serialNumber;
      }),
    );
    assert.equal(new Set(serials).size, 1, `one certificate on both: ${serials.join(' ')}`);

    const logs = leader.logs?.() ?? [];
    const issued = logs.find((l) => l.message === 'certificate issued' && l.cert === CERT);
    assert.ok(issued, 'the leader issued it');
    const waits = logs
      .filter((l) => l.message === 'DNS-01 TXT value answered by every server')
      .map((l) => Number(l.waitedMs));
    assert.equal(waits.length, 2, 'wildcard and apex were validated by DNS-01');
    // The HTTP-01 path would have put each token under coord/challenges/ and
    // polled each replica's (absent) nginx until CLUSTER_FANOUT_FAILED.
    assert.deepEqual(challengePuts, [], 'tokens published for the replicas');
    const all = nodes.flatMap((n) => n.logs?.() ?? []);
    assert.ok(!all.some((l) => JSON.stringify(l).includes('CLUSTER_FANOUT_FAILED')));
    assert.deepEqual(digTxt(bind, '_acme-challenge.cluster.test'), [], 'TXT values left behind');
    console.log(
      `      [figures] cluster (2 sidecars, rfc2136): wildcard+apex staging order to valid ${String(issued.ms)} ms; propagation waits ${waits.join(', ')} ms`,
    );
  });
});
