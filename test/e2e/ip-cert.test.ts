// IP-address certificates (RFC 8738; issue 12, item 4) against Pebble 2.9
// and the real nginx: a DOMAINS entry that is an address gets an `ip`
// identifier, Pebble fetches its HTTP-01 token from the address itself
// (http://127.0.0.1:<httpPort>/, http://[::1]:<httpPort>/) through nginx's
// webroot, the certificate has an IP SAN and no DNS SAN, it lands in
// live/<address> (`:` as `-`), and nginx, configured by the shipped
// nginx/40-acme-sidecar.sh, serves it to a client that connects to the
// address without SNI, while SNI still selects the hostname's certificate.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { chainVerifiesTo } from '../../src/util/x509.js';
import { runSidecar, sidecarEnv, type RunResult } from '../support/sidecar.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ENTRY_SCRIPT = path.join(ROOT, 'nginx', '40-acme-sidecar.sh');
const TLS_TEMPLATE = path.join(ROOT, 'nginx', 'tls-server.conf.template');

/** One profile, so no order gets a random one; named as Let's Encrypt names its IP profile. */
const PROFILES = { shortlived: { description: '6 days', validityPeriod: 6 * 86_400 } };
const HOST = 'www.ip-neighbour.demo.test';

function explain(r: RunResult): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr.slice(-4000)}`;
}

function orders(r: RunResult): string[] {
  return r.logs
    .filter((l) => l.message === 'ordering certificate')
    .map((l) => `${String(l.cert)}:${String(l.phase)}/${String(l.reason)}`)
    .sort();
}

interface Served {
  authorized: boolean;
  authorizationError?: string;
  serial: string;
  subjectAltName?: string;
}

/**
 * A TLS handshake with nginx as a browser would make it for `https://<host>/`:
 * no SNI for an address (RFC 6066 section 3), the CA's root as the only
 * trust, and Node's own name check (an IP SAN for an address).
 */
function handshake(host: string, port: number, ca: string, servername?: string): Promise<Served> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({
      host,
      port,
      ca,
      ...(servername !== undefined && { servername }),
      rejectUnauthorized: false,
    });
    sock.setTimeout(5000, () => sock.destroy(new Error(`TLS to ${host}:${port}: timeout`)));
    sock.once('error', reject);
    sock.once('secureConnect', () => {
      const cert = sock.getPeerX509Certificate();
      // rejectUnauthorized is off only to report why; the name check is ours to run.
      const nameError = cert
        ? tls.checkServerIdentity(servername ?? host, {
            subject: {},
            subjectaltname: cert.subjectAltName ?? '',
          } as tls.PeerCertificate)
        : new Error('no certificate');
      const served: Served = {
        authorized: sock.authorized && nameError === undefined,
        serial: cert?.serialNumber ?? '',
        ...(cert?.subjectAltName !== undefined && { subjectAltName: cert.subjectAltName }),
        ...(!sock.authorized && { authorizationError: String(sock.authorizationError) }),
        ...(nameError && { authorizationError: nameError.message }),
      };
      sock.end();
      resolve(served);
    });
  });
}

/**
 * Runs the shipped entry script's rendering (ACME_WAIT_SECONDS=0: the
 * certificates are there already) into `out`, then ends the watcher it
 * leaves behind (its own process group).
 */
async function renderTlsServers(env: DevEnv, listenAddr: string, out: string): Promise<void> {
  await mkdir(out, { recursive: true });
  const child = spawn('sh', [ENTRY_SCRIPT], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      CERT_DIR: env.certDir,
      ACME_TLS_TEMPLATE: TLS_TEMPLATE,
      ACME_TLS_CONF_DIR: out,
      ACME_WAIT_SECONDS: '0',
      ACME_RELOAD_INTERVAL: '3600',
      LISTEN_ADDR: listenAddr,
      HTTPS_PORT: String(env.ports.https),
    },
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  try {
    process.kill(-(child.pid ?? 0), 'SIGTERM');
  } catch {
    // The watcher is gone already.
  }
  assert.equal(code, 0, `40-acme-sidecar.sh exited ${code}: ${stderr}`);
}

describe('e2e: IP-address certificates (RFC 8738; Pebble 2.9, real nginx)', function () {
  this.timeout(240_000);
  let env: DevEnv;

  async function liveLeaf(name: string): Promise<X509Certificate> {
    return new X509Certificate(await readFile(path.join(env.certDir, 'live', name, 'cert.pem')));
  }

  before(async () => {
    env = await startDevEnv({ pebble: { profiles: PROFILES }, nginxIpv6: true });
  });
  after(async () => {
    await env?.stop();
  });

  it('issues 127.0.0.1 and ::1 from staging then production through the nginx webroot, and nginx serves each to a client connecting to the address', async () => {
    const vars = { DOMAINS: `127.0.0.1, ::1, ${HOST}`, ACME_PROFILE: 'shortlived' };
    const staging = await runSidecar(['once'], sidecarEnv(env, vars));
    assert.equal(staging.code, 0, explain(staging));
    const stagingRoot = await env.staging.getRootPem();
    for (const name of ['127.0.0.1', '--1']) {
      const full = await readFile(path.join(env.certDir, 'live', name, 'fullchain.pem'), 'utf8');
      assert.ok(chainVerifiesTo(full, stagingRoot), `${name}: staging chain`);
    }

    const production = await runSidecar(['once'], sidecarEnv(env, { ...vars, STAGING: 'false' }));
    assert.equal(production.code, 0, explain(production));
    assert.deepEqual(
      orders(production),
      [
        '--1:production/StagingOnly',
        '127.0.0.1:production/StagingOnly',
        `${HOST}:production/StagingOnly`,
      ],
      explain(production),
    );
    // `once` names each certificate with its address.
    assert.match(
      production.stdout,
      /127\.0\.0\.1 \[127\.0\.0\.1\] phase=production/,
      explain(production),
    );
    assert.match(production.stdout, /--1 \[::1\] phase=production/, explain(production));

    const productionRoot = await env.production.getRootPem();
    const v4 = await liveLeaf('127.0.0.1');
    const v6 = await liveLeaf('--1');
    // An IP SAN, not a DNS SAN (RFC 8738 section 3), and no CN to hold a name.
    assert.equal(v4.subjectAltName, 'IP Address:127.0.0.1');
    assert.equal(v6.subjectAltName, 'IP Address:0:0:0:0:0:0:0:1');
    for (const name of ['127.0.0.1', '--1']) {
      const full = await readFile(path.join(env.certDir, 'live', name, 'fullchain.pem'), 'utf8');
      assert.ok(chainVerifiesTo(full, productionRoot), `${name}: production chain`);
    }

    // Pebble fetched each token from the address itself, through nginx.
    const access = await readFile(env.nginx.accessLogPath, 'utf8');
    const fetched = (host: string) =>
      access
        .split('\n')
        .filter(
          (l) =>
            l.startsWith(`${host} `) &&
            /GET \/\.well-known\/acme-challenge\/\S+ HTTP\/1\.1" 200/.test(l) &&
            /Pebble/i.test(l),
        );
    assert.ok(
      fetched('127.0.0.1').length > 0,
      `no Pebble fetch over 127.0.0.1 in:\n${access.slice(-3000)}`,
    );
    assert.ok(fetched('::1').length > 0, `no Pebble fetch over ::1 in:\n${access.slice(-3000)}`);

    // The TLS servers as the nginx image renders them, on both loopbacks.
    await renderTlsServers(env, '127.0.0.1', path.join(env.dir, 'tls-v4'));
    await renderTlsServers(env, '[::1]', path.join(env.dir, 'tls-v6'));
    const conf4 = await readFile(path.join(env.dir, 'tls-v4', 'acme-tls-127.0.0.1.conf'), 'utf8');
    assert.match(conf4, /listen 127\.0\.0\.1:\d+ ssl default_server;/);
    assert.match(conf4, /server_name 127\.0\.0\.1;/);
    const conf6 = await readFile(path.join(env.dir, 'tls-v6', 'acme-tls---1.conf'), 'utf8');
    assert.match(conf6, /listen \[::1\]:\d+ ssl default_server;/);
    assert.match(conf6, /server_name \[::1\];/);
    await env.nginx.reload({
      include: [path.join(env.dir, 'tls-v4', '*.conf'), path.join(env.dir, 'tls-v6', '*.conf')],
    });

    const served4 = await handshake('127.0.0.1', env.ports.https, productionRoot);
    assert.equal(served4.serial, v4.serialNumber, JSON.stringify(served4));
    assert.ok(served4.authorized, JSON.stringify(served4));
    const served6 = await handshake('::1', env.ports.https, productionRoot);
    assert.equal(served6.serial, v6.serialNumber, JSON.stringify(served6));
    assert.ok(served6.authorized, JSON.stringify(served6));
    // SNI still picks the hostname's certificate on the same ports.
    const host = await liveLeaf(HOST);
    for (const address of ['127.0.0.1', '::1']) {
      const byName = await handshake(address, env.ports.https, productionRoot, HOST);
      assert.equal(byName.serial, host.serialNumber, `${address} with SNI ${HOST}`);
      assert.ok(byName.authorized, JSON.stringify(byName));
    }

    // What was issued matches what was asked: no re-issue on the next pass.
    const again = await runSidecar(['once'], sidecarEnv(env, { ...vars, STAGING: 'false' }));
    assert.equal(again.code, 0, explain(again));
    assert.deepEqual(orders(again), [], explain(again));
  });
});
