// A real etcd cluster on 127.0.0.1 for tests: `members` etcd processes
// (Debian `etcd-server`), each with its own data dir in a temp dir and its own
// free client and peer ports. Members can be stopped (SIGTERM), killed
// (SIGKILL) and started again with their data, so tests can take away one
// member or a majority and bring them back.
//
// Timeouts are short (heartbeat 50 ms, election 500 ms): a lost leader is
// replaced in about a second instead of etcd's default 1-10 s.
import { execFile } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import {
  freePorts,
  logTail,
  pidListensOn,
  spawnManaged,
  waitUntilReady,
  type ManagedProcess,
} from './proc.js';

export const ETCD_BIN = '/usr/bin/etcd';

export interface EtcdClusterOptions {
  /** Number of members. Default 3. */
  members?: number;
  /** Parent of the cluster's temp dir. Default: os.tmpdir(). */
  baseDir?: string;
  /** Keep the temp dir (data dirs, `<name>.log`) after stop(). Default false. */
  keepTempDir?: boolean;
  /** etcd --heartbeat-interval in ms. Default 50. */
  heartbeatMs?: number;
  /** etcd --election-timeout in ms (at least 5 x heartbeat). Default 500. */
  electionMs?: number;
  /** How long start and waitHealthy wait, in ms. Default 20000. */
  readyTimeoutMs?: number;
  /**
   * Serve clients over TLS only (https:// client URLs) and require a client
   * certificate signed by a throwaway CA (`--client-cert-auth`). Peers stay
   * plain http. Default false.
   */
  tls?: boolean;
}

/** PEM files of a TLS cluster: trust `caFile`, present `certFile`/`keyFile`. */
export interface EtcdClientTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface EtcdMember {
  /** `n1`, `n2`, ... */
  readonly name: string;
  /** `http://127.0.0.1:<port>`: what clients connect to. */
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly logPath: string;
  /** Pid of the current process, or undefined when stopped. */
  pid(): number | undefined;
  isRunning(): boolean;
  /**
   * Start the member again (keeping its data) and wait until it listens on its
   * client port. It does not wait for quorum: with a majority down, one
   * member alone never becomes healthy. Use cluster.waitHealthy() for that.
   */
  start(): Promise<void>;
  /** SIGTERM, SIGKILL after 5 s; resolves once exited. */
  stop(): Promise<void>;
  /** SIGKILL (a crash); resolves once exited. */
  kill(): Promise<void>;
  /** True if this member answers /health with `"health":"true"` (it has a leader). */
  healthy(): Promise<boolean>;
}

export interface EtcdCluster {
  /** Temp dir holding the data dirs and logs. */
  readonly dir: string;
  /** Client URLs of every member (running or not), for clients' endpoint lists. */
  readonly endpoints: string[];
  /** With `tls`: the CA and a client certificate the members accept. */
  readonly tls?: EtcdClientTls;
  readonly members: EtcdMember[];
  /** Wait until every running member reports healthy (a leader, quorum). */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Name of the current leader as a running member sees it, or undefined. */
  leaderName(): Promise<string | undefined>;
  /** Pids of every running member. */
  pids(): number[];
  /** Stop every member (SIGTERM, SIGKILL after 1 s), wait, remove the temp dir. */
  stop(): Promise<void>;
}

interface TlsMaterial {
  ca: string;
  cert: string;
  key: string;
}

/** GET or POST on a member's client URL, with a short timeout. */
function request(
  url: string,
  method: 'GET' | 'POST',
  body?: string,
  timeoutMs = 1000,
  tlsMaterial?: TlsMaterial,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? https : http).request(
      url,
      {
        method,
        agent: false,
        timeout: timeoutMs,
        headers: body ? { 'content-type': 'application/json' } : {},
        ...tlsMaterial,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('error', reject);
        res.once('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.once('timeout', () => req.destroy(new Error(`${method} ${url}: timeout`)));
    req.once('error', reject);
    req.end(body);
  });
}

/** etcd's /health: `{"health":"true"}` only when the member has a leader and serves reads. */
async function memberHealthy(clientUrl: string, tlsMaterial?: TlsMaterial): Promise<boolean> {
  try {
    const res = await request(`${clientUrl}/health`, 'GET', undefined, 1500, tlsMaterial);
    return (JSON.parse(res.body) as { health?: unknown }).health === 'true';
  } catch {
    return false;
  }
}

interface StatusReply {
  header?: { member_id?: string };
  leader?: string;
}

export async function startEtcdCluster(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  if (!existsSync(ETCD_BIN)) {
    throw new Error(
      `${ETCD_BIN} is missing. Install the Debian package: apt-get update && apt-get install -y etcd-server etcd-client`,
    );
  }
  const count = opts.members ?? 3;
  const heartbeat = opts.heartbeatMs ?? 50;
  const election = opts.electionMs ?? 500;
  const readyTimeout = opts.readyTimeoutMs ?? 20000;
  const dir = await mkdtemp(path.join(opts.baseDir ?? os.tmpdir(), 'acme-etcd-'));

  const clientTls = opts.tls ? await makeTls(path.join(dir, 'tls')) : undefined;
  const tlsMaterial: TlsMaterial | undefined = clientTls && {
    ca: await readFile(clientTls.caFile, 'utf8'),
    cert: await readFile(clientTls.certFile, 'utf8'),
    key: await readFile(clientTls.keyFile, 'utf8'),
  };
  const scheme = opts.tls ? 'https' : 'http';
  const ports = await freePorts(count * 2);
  const specs = Array.from({ length: count }, (_, i) => {
    const name = `n${i + 1}`;
    const clientPort = ports[2 * i] as number;
    const peerPort = ports[2 * i + 1] as number;
    return {
      name,
      clientPort,
      clientUrl: `${scheme}://127.0.0.1:${clientPort}`,
      peerUrl: `http://127.0.0.1:${peerPort}`,
      dataDir: path.join(dir, name),
      logPath: path.join(dir, `${name}.log`),
    };
  });
  const initialCluster = specs.map((s) => `${s.name}=${s.peerUrl}`).join(',');
  // Unique per cluster so a stray member of another test's cluster can never join.
  const token = path.basename(dir);

  const procs = new Map<string, ManagedProcess>();
  // Last resort if the test runner exits without stop(): members run in their
  // own process groups and would otherwise outlive us, and their data dirs
  // would pile up in the temp dir.
  const onExit = (): void => {
    procs.forEach((p) => p.killNow());
    if (!opts.keepTempDir) rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);

  const members: EtcdMember[] = specs.map((s) => {
    const spawnIt = (): ManagedProcess => {
      const current = procs.get(s.name);
      if (current?.isRunning()) throw new Error(`etcd ${s.name} is already running`);
      // On restart the data dir exists and etcd ignores the --initial-* flags.
      const proc = spawnManaged(
        `etcd ${s.name}`,
        ETCD_BIN,
        [
          '--name',
          s.name,
          '--data-dir',
          s.dataDir,
          '--listen-client-urls',
          s.clientUrl,
          '--advertise-client-urls',
          s.clientUrl,
          '--listen-peer-urls',
          s.peerUrl,
          '--initial-advertise-peer-urls',
          s.peerUrl,
          '--initial-cluster',
          initialCluster,
          '--initial-cluster-state',
          'new',
          '--initial-cluster-token',
          token,
          '--heartbeat-interval',
          String(heartbeat),
          '--election-timeout',
          String(election),
          // A member cut off from its peers keeps raising its term without
          // pre-vote and disrupts the cluster when they return (3.5's default).
          '--pre-vote',
          '--logger',
          'zap',
          '--log-outputs',
          'stderr',
          // A test cluster holds kilobytes; keep the preallocated backend small.
          '--quota-backend-bytes',
          String(256 * 1024 * 1024),
          ...(clientTls
            ? [
                '--cert-file',
                path.join(dir, 'tls', 'server.pem'),
                '--key-file',
                path.join(dir, 'tls', 'server.key'),
                '--trusted-ca-file',
                clientTls.caFile,
                '--client-cert-auth',
              ]
            : []),
        ],
        { logPath: s.logPath },
      );
      procs.set(s.name, proc);
      return proc;
    };
    const current = (): ManagedProcess | undefined => {
      const p = procs.get(s.name);
      return p?.isRunning() ? p : undefined;
    };
    return {
      name: s.name,
      clientUrl: s.clientUrl,
      peerUrl: s.peerUrl,
      dataDir: s.dataDir,
      logPath: s.logPath,
      pid: () => current()?.pid,
      isRunning: () => current() !== undefined,
      async start() {
        const proc = spawnIt();
        await waitUntilReady(
          proc,
          async () => pidListensOn(proc.pid, s.clientPort),
          'its client port',
          readyTimeout,
        );
      },
      async stop() {
        await current()?.stop();
      },
      async kill() {
        const p = current();
        if (!p) return;
        p.killNow();
        await p.exited;
      },
      healthy: () => memberHealthy(s.clientUrl, tlsMaterial),
    };
  });

  const waitHealthy = async (timeoutMs = readyTimeout): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const running = members.filter((m) => m.isRunning());
      if (running.length === 0) throw new Error('etcd: no member is running');
      const health = await Promise.all(running.map((m) => m.healthy()));
      if (health.every(Boolean)) return;
      if (Date.now() > deadline) {
        const sick = running.filter((_, i) => !health[i]);
        throw new Error(
          `etcd: ${sick.map((m) => m.name).join(', ')} not healthy after ${timeoutMs} ms.\n` +
            sick.map((m) => `--- tail of ${m.logPath} ---\n${logTail(m.logPath, 15)}`).join('\n'),
        );
      }
      await sleep(100);
    }
  };

  const leaderName = async (): Promise<string | undefined> => {
    // Member ids come back as decimal strings from the JSON gateway.
    const ids = new Map<string, string>();
    let leader: string | undefined;
    for (const m of members.filter((x) => x.isRunning())) {
      try {
        const res = await request(
          `${m.clientUrl}/v3/maintenance/status`,
          'POST',
          '{}',
          1000,
          tlsMaterial,
        );
        const st = JSON.parse(res.body) as StatusReply;
        if (st.header?.member_id) ids.set(st.header.member_id, m.name);
        if (st.leader && st.leader !== '0') leader = st.leader;
      } catch {
        /* member not answering: skip */
      }
    }
    return leader === undefined ? undefined : ids.get(leader);
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // A member without quorum can sit out the whole SIGTERM grace period, so
    // the grace is short; etcd's WAL is crash-safe and the data is usually
    // thrown away anyway.
    await Promise.all([...procs.values()].map((p) => p.stop(1000)));
    process.removeListener('exit', onExit);
    if (!opts.keepTempDir) await rm(dir, { recursive: true, force: true });
  };

  try {
    await Promise.all(specs.map((s) => mkdir(s.dataDir, { recursive: true, mode: 0o700 })));
    // All at once: a new member waits for its peers before it serves.
    await Promise.all(members.map((m) => m.start()));
    await waitHealthy();
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    dir,
    endpoints: members.map((m) => m.clientUrl),
    ...(clientTls && { tls: clientTls }),
    members,
    waitHealthy,
    leaderName,
    pids: () => members.flatMap((m) => m.pid() ?? []),
    stop,
  };
}

const execFileAsync = promisify(execFile);

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${e.stderr ?? e.message}`);
  }
}

/**
 * A throwaway CA in `dir`, a server certificate for 127.0.0.1 (server.pem,
 * server.key) and a client certificate (client.pem, client.key), P-256.
 */
async function makeTls(dir: string): Promise<EtcdClientTls> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const f = (n: string): string => path.join(dir, n);
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl([
    'req',
    '-x509',
    ...ecKey,
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=acme-sidecar devenv etcd CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const leaf = (name: string, cn: string, ext: string[]): Promise<void> =>
    openssl([
      'req',
      '-x509',
      ...ecKey,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.pem`),
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-addext',
      'basicConstraints=critical,CA:FALSE',
      '-addext',
      'keyUsage=critical,digitalSignature',
      ...ext.flatMap((e) => ['-addext', e]),
    ]);
  await leaf('server', 'localhost', [
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    'extendedKeyUsage=serverAuth,clientAuth',
  ]);
  await leaf('client', 'acme-sidecar', ['extendedKeyUsage=clientAuth']);
  return { caFile: f('ca.pem'), certFile: f('client.pem'), keyFile: f('client.key') };
}
