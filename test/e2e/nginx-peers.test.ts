// The no-etcd multi-node pattern: nginx/peers.conf.template on three real
// nginx instances on loopback. A token written on one node only is served by
// every node (own webroot first, then the peers), a missing token is a 404
// from every node, forwarded requests are never forwarded again (counted in
// each node's access log), and a peer that is down costs nothing but a
// refused connection.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { NGINX_BIN, defaultTemplateDir, renderTemplate } from '../../devenv/nginx.js';
import {
  childPids,
  freePorts,
  logTail,
  pidAlive,
  pidListensOn,
  spawnManaged,
  waitUntilReady,
  type ManagedProcess,
} from '../../devenv/proc.js';

/** Upper bound for any answer in this test, peers down included. */
const MAX_MS = 3000;

interface Node {
  name: string;
  port: number;
  dir: string;
  webroot: string;
  accessLog: string;
  proc: ManagedProcess;
  /** Every worker pid seen, to check that none survives `stop()`. */
  workers: Set<number>;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  ms: number;
}

/** One access-log line, in the `peers` format of mainConfig(). */
interface LogLine {
  uri: string;
  status: string;
  hop: string;
  upstream: string;
}

/** GET 127.0.0.1:port with any headers; fails after 10 s, reports the time taken. */
function get(port: number, urlPath: string, headers: Record<string, string>): Promise<Answer> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: urlPath, headers, agent: false, timeout: 10000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('error', reject);
        res.once('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            ms: performance.now() - start,
          }),
        );
      },
    );
    req.once('timeout', () => req.destroy(new Error(`GET :${port}${urlPath}: timeout`)));
    req.once('error', reject);
  });
}

/**
 * The main config the stock image's nginx.conf would provide, around the
 * rendered template, with every writable path inside the prefix dir. The
 * access log records the hop marker and where each request was proxied to.
 */
function mainConfig(dir: string, server: string): string {
  return `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log notice;
events { worker_connections 256; }
http {
  types { text/html html; text/plain txt; }
  default_type application/octet-stream;
  log_format peers 'uri=$request_uri status=$status hop=$http_x_acme_peer_hop upstream=$upstream_addr ustatus=$upstream_status';
  access_log ${dir}/access.log peers;
  client_body_temp_path ${dir}/tmp/client_body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;

${server}
}
`;
}

/** Start nginx in the foreground from an already written config; resolves once it listens. */
async function startNginxFrom(
  name: string,
  dir: string,
  port: number,
): Promise<{ proc: ManagedProcess; workers: Set<number> }> {
  const errorLog = path.join(dir, 'error.log');
  const proc = spawnManaged(
    name,
    NGINX_BIN,
    ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', errorLog],
    { logPath: path.join(dir, 'nginx.stdout.log') },
  );
  const workers = new Set<number>();
  try {
    await waitUntilReady(
      proc,
      async () => {
        const kids = childPids(proc.pid);
        kids.forEach((p) => workers.add(p));
        return kids.length > 0 && pidListensOn(proc.pid, port);
      },
      'its listener and a worker',
    );
  } catch (err) {
    await proc.stop();
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`${msg}\n--- tail of ${errorLog} ---\n${logTail(errorLog)}`);
  }
  return { proc, workers };
}

function readLog(node: Node): LogLine[] {
  let text: string;
  try {
    text = readFileSync(node.accessLog, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.startsWith('uri='))
    .map((l) => {
      const m = /^uri=(\S*) status=(\S*) hop=(\S*) upstream=(.*?) ustatus=(.*)$/.exec(l);
      assert.ok(m, `unexpected access log line on ${node.name}: ${l}`);
      return { uri: m[1] ?? '', status: m[2] ?? '', hop: m[3] ?? '', upstream: m[4] ?? '' };
    });
}

/**
 * Access-log lines mentioning `token`, per node name, once they have settled:
 * nginx writes a request's log line after sending the answer, so a client
 * can hold the answer before the line exists. Read until the count has not
 * changed for 150 ms (at most 3 s). The quiet period is deliberate, not a
 * guess at nginx's speed: callers also assert upper bounds (no extra hop).
 */
async function linesFor(nodes: readonly Node[], token: string): Promise<Record<string, LogLine[]>> {
  const read = (): Record<string, LogLine[]> =>
    Object.fromEntries(nodes.map((n) => [n.name, readLog(n).filter((l) => l.uri.includes(token))]));
  const count = (r: Record<string, LogLine[]>): number =>
    Object.values(r).reduce((sum, l) => sum + l.length, 0);
  const deadline = Date.now() + 3000;
  let last = read();
  let stableSince = Date.now();
  while (Date.now() < deadline && Date.now() - stableSince < 150) {
    await new Promise((r) => setTimeout(r, 25));
    const next = read();
    if (count(next) !== count(last)) stableSince = Date.now();
    last = next;
  }
  return last;
}

let seq = 0;
/** A fresh, URL-safe token name (the shape of an ACME token). */
function newToken(label: string): string {
  seq += 1;
  return `${label}-${seq}-${Math.random().toString(36).slice(2)}_Zq-9`;
}

const challengePath = (token: string): string => `/.well-known/acme-challenge/${token}`;

async function writeToken(node: Node, token: string, content: string): Promise<void> {
  // 0644: nginx workers run as an unprivileged user.
  await writeFile(path.join(node.webroot, '.well-known', 'acme-challenge', token), content, {
    mode: 0o644,
  });
}

describe('nginx peer fallback (nginx/peers.conf.template, three real nginx)', function () {
  let base = '';
  const nodes: Node[] = [];
  let A: Node, B: Node, C: Node;
  /** Peers each node lists: every other node. */
  const PEERS = 2;

  before(async () => {
    const template = await readFile(path.join(defaultTemplateDir(), 'peers.conf.template'), 'utf8');
    base = await mkdtemp(path.join(os.tmpdir(), 'acme-peers-'));
    // Workers run as nobody when the tests run as root: they must reach the webroots.
    await chmod(base, 0o755);
    const ports = await freePorts(3);
    const names = ['A', 'B', 'C'];
    const specs = names.map((name, i) => ({
      name,
      port: ports[i] as number,
      dir: path.join(base, name),
      webroot: path.join(base, name, 'webroot'),
    }));
    for (const s of specs) {
      await mkdir(path.join(s.dir, 'tmp'), { recursive: true, mode: 0o755 });
      await mkdir(path.join(s.webroot, '.well-known', 'acme-challenge'), {
        recursive: true,
        mode: 0o755,
      });
      // A file outside the challenge path, which must never be served.
      await writeFile(path.join(s.webroot, 'outside.txt'), 'not a token\n', { mode: 0o644 });
      const server = renderTemplate(template, {
        LISTEN_ADDR: '127.0.0.1',
        HTTP_PORT: String(s.port),
        ACME_WEBROOT: s.webroot,
        PEER_SERVERS: specs
          .filter((o) => o !== s)
          .map((o) => `server 127.0.0.1:${o.port} max_fails=0;`)
          .join(' '),
      });
      await writeFile(path.join(s.dir, 'nginx.conf'), mainConfig(s.dir, server));
    }
    for (const s of specs) {
      const { proc, workers } = await startNginxFrom(`nginx-${s.name}`, s.dir, s.port);
      nodes.push({ ...s, accessLog: path.join(s.dir, 'access.log'), proc, workers });
    }
    [A, B, C] = nodes as [Node, Node, Node];
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.proc.stop()));
    for (const n of nodes) {
      assert.ok(!pidAlive(n.proc.pid), `nginx ${n.name} master ${n.proc.pid} still alive`);
      for (const w of n.workers) assert.ok(!pidAlive(w), `nginx ${n.name} worker ${w} still alive`);
    }
    // Nothing anywhere still runs with this test's prefix directories.
    const leftovers: string[] = [];
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      try {
        const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ');
        if (base && cmd.includes(base) && pidAlive(Number(e))) leftovers.push(`${e}: ${cmd}`);
      } catch {
        /* gone */
      }
    }
    assert.deepEqual(leftovers, [], 'nginx processes of this test left running');
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('serves a token present on node B only through A, B and C, with any Host', async () => {
    const token = newToken('only-on-b');
    const content = `${token}.keyauth-Thumbprint_abc123`;
    await writeToken(B, token, content);
    const hosts = ['www.example.org', 'api.example.net', '10.1.2.3'];
    for (const [i, n] of nodes.entries()) {
      const r = await get(n.port, challengePath(token), { host: hosts[i] ?? 'x.test' });
      assert.equal(r.status, 200, `node ${n.name}: ${r.status} ${r.body}`);
      assert.equal(r.body, content, `node ${n.name}: body`);
      assert.match(String(r.headers['content-type']), /^text\/plain\b/, `node ${n.name}`);
      assert.ok(r.ms < MAX_MS, `node ${n.name}: ${r.ms} ms`);
    }
    // Each client request reached B exactly once; A and C each forwarded it,
    // B never did.
    const lines = await linesFor(nodes, token);
    const onB = lines.B ?? [];
    assert.equal(onB.filter((l) => l.hop === '-').length, 1, 'B: its own client request');
    assert.ok(
      onB.every((l) => l.status === '200' && l.upstream === '-'),
      `B served from its webroot only: ${JSON.stringify(onB)}`,
    );
    // From A: A's client request + B's hop (+ C's 404 hop if C was tried first).
    assert.equal(onB.filter((l) => l.hop === '1').length, 2, 'B: one hop each from A and C');
  });

  it('answers 404 from every node when no node has the token, with no loop', async () => {
    for (const entry of nodes) {
      const token = newToken(`missing-via-${entry.name}`);
      const r = await get(entry.port, challengePath(token), { host: 'www.example.org' });
      assert.equal(r.status, 404, `via ${entry.name}: ${r.status}`);
      assert.ok(r.ms < MAX_MS, `via ${entry.name}: ${r.ms} ms`);

      const lines = await linesFor(nodes, token);
      const total = Object.values(lines).reduce((s, l) => s + l.length, 0);
      for (const n of nodes) {
        const mine = lines[n.name] ?? [];
        // The bound the design promises: 1 + peers requests per client request.
        assert.ok(mine.length <= 1 + PEERS, `${n.name} saw ${mine.length} requests`);
        if (n === entry) {
          // The client's request, forwarded once to every peer (both 404).
          assert.deepEqual(
            mine.map((l) => [l.hop, l.status]),
            [['-', '404']],
          );
          assert.equal(mine[0]?.upstream.split(',').length, PEERS, mine[0]?.upstream);
        } else {
          // Exactly one forwarded request, answered locally: not forwarded again.
          assert.deepEqual(
            mine.map((l) => [l.hop, l.status, l.upstream]),
            [['1', '404', '-']],
            `${n.name}: ${JSON.stringify(mine)}`,
          );
        }
      }
      assert.equal(total, 1 + PEERS, `total requests for one client request via ${entry.name}`);
    }
  });

  it('answers a request that already carries the hop marker from the local webroot only', async () => {
    const token = newToken('hop-marked');
    await writeToken(B, token, 'on B\n');
    const r = await get(A.port, challengePath(token), { host: 'x.test', 'X-Acme-Peer-Hop': '1' });
    assert.equal(r.status, 404);
    const lines = await linesFor(nodes, token);
    assert.deepEqual(
      (lines.A ?? []).map((l) => l.upstream),
      ['-'],
    );
    assert.deepEqual(lines.B, []);
    assert.deepEqual(lines.C, []);
  });

  it('does not proxy paths outside /.well-known/acme-challenge/', async () => {
    const token = newToken('outside');
    await writeToken(B, token, 'on B\n');
    for (const p of [
      '/outside.txt',
      `/${token}`,
      `/.well-known/${token}`,
      `/.well-known/acme-challenge-other/${token}`,
      `/.well-known/acme-challenge/../outside.txt`,
    ]) {
      for (const n of nodes) {
        const r = await get(n.port, p, { host: 'www.example.org' });
        assert.equal(r.status, 404, `${n.name} ${p}: ${r.status} ${r.body}`);
        assert.doesNotMatch(r.body, /not a token|on B/);
      }
    }
    // Nothing was forwarded: no hop-marked request and no upstream anywhere.
    for (const n of nodes) {
      const bad = readLog(n).filter(
        (l) =>
          !l.uri.startsWith('/.well-known/acme-challenge/') &&
          (l.hop !== '-' || l.upstream !== '-'),
      );
      assert.deepEqual(bad, [], `${n.name} proxied a non-challenge path`);
    }
  });

  it('still serves B’s token through A with peer C down, and 404s quickly', async () => {
    await C.proc.stop();
    assert.ok(!pidAlive(C.proc.pid));
    await assert.rejects(get(C.port, '/', { host: 'x.test' }), /ECONNREFUSED/);

    const token = newToken('c-down');
    await writeToken(B, token, 'served despite C\n');
    // Several times, so nginx's round robin tries C first in some of them.
    let triedCFirst = 0;
    for (let i = 0; i < 4; i++) {
      const r = await get(A.port, challengePath(token), { host: 'www.example.org' });
      assert.equal(r.status, 200, `try ${i}: ${r.status} ${r.body}`);
      assert.equal(r.body, 'served despite C\n');
      assert.ok(r.ms < MAX_MS, `try ${i}: ${r.ms} ms`);
    }
    for (const l of (await linesFor(nodes, token)).A ?? []) {
      if (l.upstream.includes(`:${C.port}`)) triedCFirst += 1;
    }
    assert.ok(triedCFirst > 0, 'the down peer was tried (and skipped) at least once');

    // No node has it: still a 404 (not a 502), whichever peer was tried last.
    for (let i = 0; i < 4; i++) {
      const missing = newToken('c-down-missing');
      for (const n of [A, B]) {
        const r = await get(n.port, challengePath(missing), { host: 'www.example.org' });
        assert.equal(r.status, 404, `via ${n.name}, try ${i}: ${r.status}`);
        assert.ok(r.ms < MAX_MS, `via ${n.name}, try ${i}: ${r.ms} ms`);
      }
    }
  });
});
