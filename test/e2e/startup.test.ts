// What the CLI loads before it does its work: `healthcheck` runs every 30 s
// in the container and must not load the ACME client or etcd to ask one URL;
// a sidecar without a cluster or a Rancher/Docker platform must not load
// etcd's gRPC client or those platforms, and one without DNS_PROVIDER not
// the DNS-01 code (src/main.ts imports them when configured).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'src', 'cli.ts');

/** Preloaded into the CLI: on exit, prints the npm packages loaded through require (CommonJS). */
const REPORTER = `process.on('exit', () => {
  const pkgs = new Set();
  for (const k of Object.keys(require.cache)) {
    const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\/[^]*$/.exec(k);
    if (m && !k.includes('/node_modules/tsx/')) pkgs.add(m[1].split('/node_modules/').pop());
  }
  process.stderr.write('LOADED ' + JSON.stringify([...pkgs]) + '\\n');
});
`;

interface Run {
  code: number | null;
  loaded: string[];
  stderr: string;
}

function runCli(preload: string, args: string[], env: Record<string, string>): Promise<Run> {
  const child = spawn(process.execPath, ['--require', preload, '--import', 'tsx', CLI, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      const line = stderr.split('\n').find((l) => l.startsWith('LOADED '));
      const loaded = line ? (JSON.parse(line.slice('LOADED '.length)) as string[]) : [];
      resolve({ code, loaded, stderr });
    });
  });
}

describe('e2e: what the CLI loads at start-up', function () {
  this.timeout(120_000);
  let dir: string;
  let preload: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'startup-'));
    preload = path.join(dir, 'report-modules.cjs');
    await writeFile(preload, REPORTER);
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('healthcheck loads neither the ACME client, etcd, axios nor the logger', async () => {
    const r = await runCli(preload, ['healthcheck'], { STATUS_ADDRESS: 'off' });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stderr.includes('LOADED '), r.stderr);
    for (const pkg of ['acme-client', 'etcd3', '@grpc/grpc-js', 'axios', 'winston']) {
      assert.ok(!r.loaded.includes(pkg), `healthcheck loaded ${pkg}: ${r.loaded.join(', ')}`);
    }
  });

  it('healthcheck refuses a malformed STATUS_ADDRESS with exit 2, naming it', async () => {
    const r = await runCli(preload, ['healthcheck'], { STATUS_ADDRESS: 'nonsense' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /STATUS_ADDRESS="nonsense": expected host:port/);
  });

  it('once --dry-run on the static platform without a cluster or DNS-01 loads neither etcd, gRPC nor dns-packet', async () => {
    const r = await runCli(preload, ['once', '--dry-run'], {
      DOMAINS: 'a.demo.test',
      STATE_DIR: path.join(dir, 'state'),
      WEBROOT: path.join(dir, 'webroot'),
      STATUS_ADDRESS: 'off',
      LOG_LEVEL: 'warn',
    });
    assert.equal(r.code, 0, r.stderr);
    // The ACME client is loaded: the check is not vacuous.
    assert.ok(r.loaded.includes('acme-client'), r.loaded.join(', '));
    for (const pkg of ['etcd3', '@grpc/grpc-js', 'dns-packet']) {
      assert.ok(!r.loaded.includes(pkg), `once loaded ${pkg}: ${r.loaded.join(', ')}`);
    }
  });

  it('once --dry-run loads the DNS-01 code (dns-packet) only with DNS_PROVIDER set', async () => {
    const r = await runCli(preload, ['once', '--dry-run'], {
      DOMAINS: 'a.demo.test',
      STATE_DIR: path.join(dir, 'state-dns'),
      WEBROOT: path.join(dir, 'webroot'),
      STATUS_ADDRESS: 'off',
      LOG_LEVEL: 'warn',
      DNS_PROVIDER: 'rfc2136',
      RFC2136_NAMESERVER: '127.0.0.1:53',
      RFC2136_TSIG_KEY: 'startup-key',
      RFC2136_TSIG_SECRET: Buffer.alloc(32, 1).toString('base64'),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.loaded.includes('dns-packet'), r.loaded.join(', '));
  });
});
