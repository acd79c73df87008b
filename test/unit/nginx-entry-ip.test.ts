// nginx/40-acme-sidecar.sh and IP-address certificates (RFC 8738): the
// script reads iPAddress SANs from cert.pem (IPv6 in its RFC 5952 form, in
// brackets) into server_name, and makes the first certificate with an
// address of LISTEN_ADDR's family the default server of the port, since
// clients send no SNI for an address. The e2e test (ip-cert.test.ts) has
// nginx serve what it renders; this table covers the forms.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { systemClock } from '../../src/lifecycle/clock.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCRIPT = path.join(ROOT, 'nginx', '40-acme-sidecar.sh');
const TEMPLATE = path.join(ROOT, 'nginx', 'tls-server.conf.template');

/** Runs the script's rendering, then ends the watcher it leaves (its process group). */
async function render(certDir: string, out: string, listenAddr: string): Promise<void> {
  const child = spawn('sh', [SCRIPT], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      CERT_DIR: certDir,
      ACME_TLS_TEMPLATE: TEMPLATE,
      ACME_TLS_CONF_DIR: out,
      ACME_WAIT_SECONDS: '0',
      ACME_RELOAD_INTERVAL: '3600',
      LISTEN_ADDR: listenAddr,
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
  assert.equal(code, 0, stderr);
}

describe('nginx/40-acme-sidecar.sh with IP-address certificates', function () {
  this.timeout(60_000);
  let dir: string;
  /** Certificate name -> SANs; rendered in this (glob) order: --1, 127.0.0.1, 2001-db8--, www... */
  const CERTS: Record<string, string[]> = {
    '--1': ['::1', '2001:db8:0:0:1::1', '1:0:0:2::3', '1:2:3:4:5:6:7:0'],
    '127.0.0.1': ['127.0.0.1'],
    '2001-db8--': ['2001:db8::', 'v6.example.com'],
    'www.example.com': ['www.example.com', 'example.com'],
  };

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'entry-ip-'));
    const issuer = new SelfSignedIssuer(systemClock);
    for (const [name, domains] of Object.entries(CERTS)) {
      const b = await issuer.issue({ name, domains, source: 'test' }, 'ecdsa-p256');
      const live = path.join(dir, 'certs', 'live', name);
      await mkdir(live, { recursive: true });
      await writeFile(path.join(live, 'cert.pem'), b.cert);
      await writeFile(path.join(live, 'fullchain.pem'), b.fullchain);
    }
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function rendered(
    listenAddr: string,
  ): Promise<Record<string, { listen: string; names: string }>> {
    const out = path.join(dir, `out-${listenAddr.replace(/\W/g, '')}`);
    await mkdir(out, { recursive: true });
    await render(path.join(dir, 'certs'), out, listenAddr);
    const result: Record<string, { listen: string; names: string }> = {};
    for (const f of (await readdir(out)).sort()) {
      const text = await readFile(path.join(out, f), 'utf8');
      result[f] = {
        listen: /^\s*listen ([^;]*);/m.exec(text)?.[1] ?? '',
        names: /^\s*server_name ([^;]*);/m.exec(text)?.[1] ?? '',
      };
    }
    return result;
  }

  // RFC 5952 section 4.2: the longest run of two or more zero groups is
  // "::", the first of two equal runs; one zero group stays "0".
  it('writes IPv6 SANs in RFC 5952 form in brackets, and IPv4 ones as they are', async () => {
    const r = await rendered('0.0.0.0');
    assert.equal(
      r['acme-tls---1.conf']?.names,
      '[::1] [2001:db8::1:0:0:1] [1:0:0:2::3] [1:2:3:4:5:6:7:0]',
    );
    assert.equal(r['acme-tls-127.0.0.1.conf']?.names, '127.0.0.1');
    assert.equal(r['acme-tls-2001-db8--.conf']?.names, '[2001:db8::] v6.example.com');
    assert.equal(r['acme-tls-www.example.com.conf']?.names, 'www.example.com example.com');
  });

  it('makes the first certificate with an IPv4 address the default server of an IPv4 listener', async () => {
    const r = await rendered('0.0.0.0');
    assert.deepEqual(Object.fromEntries(Object.entries(r).map(([f, v]) => [f, v.listen])), {
      'acme-tls---1.conf': '0.0.0.0:443 ssl',
      'acme-tls-127.0.0.1.conf': '0.0.0.0:443 ssl default_server',
      'acme-tls-2001-db8--.conf': '0.0.0.0:443 ssl',
      'acme-tls-www.example.com.conf': '0.0.0.0:443 ssl',
    });
  });

  it('makes the first certificate with an IPv6 address the default server of an IPv6 listener, once', async () => {
    const r = await rendered('[::]');
    assert.deepEqual(Object.fromEntries(Object.entries(r).map(([f, v]) => [f, v.listen])), {
      'acme-tls---1.conf': '[::]:443 ssl default_server',
      'acme-tls-127.0.0.1.conf': '[::]:443 ssl',
      'acme-tls-2001-db8--.conf': '[::]:443 ssl',
      'acme-tls-www.example.com.conf': '[::]:443 ssl',
    });
  });
});
