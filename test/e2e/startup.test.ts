// What the CLI loads before it does its work: `healthcheck` runs every 30 s
// in the container and must not load the ACME client or etcd to ask one URL;
// a sidecar without a cluster or a Rancher/Docker platform must not load
// etcd's gRPC client or those platforms, and one without DNS_PROVIDER not
// the DNS-01 code (src/main.ts imports them when configured). The same holds
// for the built bundle (scripts/build.ts): `healthcheck` loads cli.js and
// small chunks only, not the chunks with the npm packages in them.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sidecarEnvFor, startDevEnv } from '../../devenv/index.js';
import { freePorts } from '../../devenv/proc.js';
import { buildCli } from '../../scripts/build.js';
import { imageNodeArgs } from '../../scripts/image-node-args.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'src', 'cli.ts');

/**
 * Preloaded into the CLI (--import): records the URL of every ES module
 * loaded (zod is one; acme-client, loaded through require, is not) in the
 * file LOADED_URLS names, and on exit prints the npm packages loaded
 * through require (CommonJS). Prints whether @peculiar/x509 is loaded at
 * the "order placed" log line (AT_FIRST_ORDER) and at exit (AT_EXIT).
 */
const REPORTER = `import { register, createRequire } from 'node:module';
register(new URL('./record-urls.mjs', import.meta.url));
const require = createRequire(import.meta.url);
// reflect-metadata (loaded by @peculiar/x509, through tsyringe) defines
// Reflect.getMetadata: whether the X.509 library has been loaded, in the
// bundle too, where no file of it is seen loading.
const x509Loaded = () => typeof Reflect.getMetadata === 'function';
const write = process.stderr.write.bind(process.stderr);
let ordered = false;
process.stderr.write = (chunk, ...rest) => {
  if (!ordered && String(chunk).includes('order placed')) {
    ordered = true;
    write('AT_FIRST_ORDER ' + JSON.stringify({ x509: x509Loaded() }) + '\\n');
  }
  return write(chunk, ...rest);
};
process.on('exit', () => {
  process.stderr.write('AT_EXIT ' + JSON.stringify({ x509: x509Loaded() }) + '\\n');
  const pkgs = new Set();
  for (const k of Object.keys(require.cache)) pkgs.add(k);
  process.stderr.write('REQUIRED ' + JSON.stringify([...pkgs]) + '\\n');
});
`;

/** The module hooks REPORTER registers (they run on the loader thread). */
const RECORD_URLS = `import { appendFileSync } from 'node:fs';
export async function load(url, context, nextLoad) {
  if (process.env.LOADED_URLS) appendFileSync(process.env.LOADED_URLS, url + '\\n');
  return nextLoad(url, context);
}
`;

/** The npm package a file belongs to ('@scope/name' or 'name'); tsx and its esbuild left out. */
function packageOf(file: string): string | undefined {
  if (/\/node_modules\/(tsx|esbuild)\//.test(file)) return undefined;
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\/[^]*$/.exec(file);
  return m?.[1]?.split('/node_modules/').pop();
}

interface Run {
  code: number | null;
  /** npm packages loaded, through require or import. */
  loaded: string[];
  /** Every file loaded as an ES module or through require. */
  files: string[];
  stdout: string;
  stderr: string;
}

async function runNode(dir: string, args: string[], env: Record<string, string>): Promise<Run> {
  const urlsFile = path.join(dir, `loaded-${Date.now()}-${Math.random()}.txt`);
  await writeFile(urlsFile, '');
  const child = spawn(
    process.execPath,
    ['--import', path.join(dir, 'report-modules.mjs'), ...args],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LOADED_URLS: urlsFile, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  const line = stderr.split('\n').find((l) => l.startsWith('REQUIRED '));
  const required = line ? (JSON.parse(line.slice('REQUIRED '.length)) as string[]) : [];
  const imported = (await readFile(urlsFile, 'utf8'))
    .split('\n')
    .filter((u) => u.startsWith('file:'))
    .map((u) => fileURLToPath(u));
  const files = [...new Set([...required, ...imported])];
  const loaded = [...new Set(files.map(packageOf).filter((p): p is string => p !== undefined))];
  return { code, loaded, files, stdout, stderr };
}

/** The CLI from source, through tsx. */
function runCli(dir: string, args: string[], env: Record<string, string>): Promise<Run> {
  return runNode(dir, ['--import', 'tsx', CLI, ...args], env);
}

/** What a bundle's run loaded from the bundle's directory, in bytes. */
async function bundleBytes(bundleDir: string, files: readonly string[]): Promise<number> {
  let total = 0;
  for (const f of files) if (f.startsWith(bundleDir + path.sep)) total += (await stat(f)).size;
  return total;
}

describe('e2e: what the CLI loads at start-up', function () {
  this.timeout(120_000);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'startup-'));
    await writeFile(path.join(dir, 'report-modules.mjs'), REPORTER);
    await writeFile(path.join(dir, 'record-urls.mjs'), RECORD_URLS);
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('healthcheck loads no npm package: neither the ACME client, zod, prom-client nor the logger', async () => {
    const r = await runCli(dir, ['healthcheck'], { STATUS_ADDRESS: 'off' });
    assert.equal(r.code, 0, r.stderr);
    // The reporter ran and saw the CLI's own modules load.
    assert.ok(r.stderr.includes('REQUIRED '), r.stderr);
    assert.ok(r.files.includes(CLI), r.files.join(', '));
    assert.deepEqual(r.loaded, [], `healthcheck loaded ${r.loaded.join(', ')}`);
  });

  it('healthcheck refuses a malformed STATUS_ADDRESS with exit 2, naming it', async () => {
    const r = await runCli(dir, ['healthcheck'], { STATUS_ADDRESS: 'nonsense' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /STATUS_ADDRESS="nonsense": expected host:port/);
  });

  it('once --dry-run on the static platform without a cluster or DNS-01 loads neither etcd, gRPC nor dns-packet', async () => {
    const r = await runCli(dir, ['once', '--dry-run'], {
      DOMAINS: 'a.demo.test',
      STATE_DIR: path.join(dir, 'state'),
      WEBROOT: path.join(dir, 'webroot'),
      STATUS_ADDRESS: 'off',
      LOG_LEVEL: 'warn',
    });
    assert.equal(r.code, 0, r.stderr);
    // The ACME client (CommonJS) and zod (an ES module) are loaded and
    // seen: the checks here and on healthcheck are not vacuous.
    for (const pkg of ['acme-client', 'zod', 'winston']) {
      assert.ok(r.loaded.includes(pkg), `${pkg} not among ${r.loaded.join(', ')}`);
    }
    // Metrics are not served by `once` (src/metrics/deferred-metrics.ts),
    // nor is anything watched.
    for (const pkg of ['etcd3', '@grpc/grpc-js', 'dns-packet', 'prom-client', 'chokidar']) {
      assert.ok(!r.loaded.includes(pkg), `once loaded ${pkg}: ${r.loaded.join(', ')}`);
    }
  });

  it('once --dry-run loads the DNS-01 code (dns-packet) only with DNS_PROVIDER set', async () => {
    const r = await runCli(dir, ['once', '--dry-run'], {
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
  describe('the built bundle (scripts/build.ts)', () => {
    let bundleDir: string;
    /** Each file of the bundle with the npm packages in it. */
    let packagesIn: Map<string, Set<string>>;
    /** The npm packages in the bundle files a run loaded. */
    const bundledLoaded = (files: readonly string[]) =>
      new Set(files.flatMap((f) => [...(packagesIn.get(f) ?? [])]));
    before(async function () {
      this.timeout(180_000);
      bundleDir = path.join(dir, 'bundle');
      packagesIn = await buildCli(bundleDir);
    });

    it('healthcheck loads cli.js and small chunks only (under 100 kB), once --dry-run the packages (over 1 MB)', async () => {
      const hc = await runNode(dir, [path.join(bundleDir, 'cli.js'), 'healthcheck'], {
        STATUS_ADDRESS: 'off',
      });
      assert.equal(hc.code, 0, hc.stderr);
      assert.deepEqual(hc.loaded, [], `healthcheck loaded ${hc.loaded.join(', ')}`);
      const hcBytes = await bundleBytes(bundleDir, hc.files);
      const once = await runNode(dir, [path.join(bundleDir, 'cli.js'), 'once', '--dry-run'], {
        DOMAINS: 'a.demo.test',
        STATE_DIR: path.join(dir, 'state-bundle'),
        WEBROOT: path.join(dir, 'webroot'),
        STATUS_ADDRESS: 'off',
        LOG_LEVEL: 'warn',
      });
      assert.equal(once.code, 0, once.stderr);
      const onceBytes = await bundleBytes(bundleDir, once.files);
      assert.ok(
        hcBytes > 0 && hcBytes < 100_000,
        `healthcheck loaded ${hcBytes} bytes of the bundle`,
      );
      assert.ok(onceBytes > 1_000_000, `once --dry-run loaded ${onceBytes} bytes of the bundle`);
      // Packages are in the bundle: only the external ones come from node_modules.
      for (const pkg of ['etcd3', '@grpc/grpc-js', 'acme-client', 'zod']) {
        assert.ok(!once.loaded.includes(pkg), `once loaded ${pkg} from node_modules`);
      }
    });

    // The bundle is not what the other e2e tests run (they run src/ through
    // tsx): it issues a certificate, and `healthcheck` asks a running daemon.
    // `once` and `run` start with the image's Node flags (the Dockerfile's
    // ENTRYPOINT: --jitless, so no WebAssembly), as the image starts them.
    it("once issues a certificate from Pebble with the image's Node flags; the daemon then answers healthcheck", async function () {
      this.timeout(300_000);
      const env = await startDevEnv();
      const cli = path.join(bundleDir, 'cli.js');
      const [port] = await freePorts(1);
      const vars = sidecarEnvFor(env, {
        STATE_DIR: await mkdtemp(path.join(dir, 'state-issue-')),
        DOMAINS: 'bundle.demo.test',
        LOG_LEVEL: 'warn',
        STATUS_ADDRESS: `127.0.0.1:${String(port)}`,
      });
      let daemon: ChildProcess | undefined;
      try {
        const once = await runNode(dir, [...imageNodeArgs(), cli, 'once'], {
          ...vars,
          LOG_LEVEL: 'info',
        });
        assert.equal(once.code, 0, `${once.stdout}\n${once.stderr}`);
        assert.match(once.stdout, /^ok {3}bundle\.demo\.test \[bundle\.demo\.test\] /m);
        // What a static-platform `once` loads (issue 15: the first order
        // at most 300 ms after start): not the metrics (prom-client), the
        // watches (chokidar), the cluster's store (etcd3, cockatiel) nor
        // the daemon's scheduler; nor the X.509 library: the CSR and the
        // placeholder are src/acme/der.ts's, and acme-client's PEM helper
        // that finalize uses is patched not to need it (scripts/build.ts).
        const loaded = bundledLoaded(once.files);
        assert.ok(loaded.has('acme-client') && loaded.has('zod'), [...loaded].join(', '));
        for (const pkg of ['prom-client', 'chokidar', 'etcd3', 'cockatiel', 'dns-packet']) {
          assert.ok(!loaded.has(pkg), `once loaded ${pkg}: ${[...loaded].join(', ')}`);
          assert.ok(!once.loaded.includes(pkg), `once loaded ${pkg} from node_modules`);
        }
        assert.ok(
          !loaded.has('@peculiar/x509'),
          `once loaded @peculiar/x509: ${[...loaded].join(', ')}`,
        );
        assert.match(once.stderr, /^AT_FIRST_ORDER \{"x509":false\}$/m);
        assert.match(once.stderr, /^AT_EXIT \{"x509":false\}$/m);

        daemon = spawn(process.execPath, [...imageNodeArgs(), cli, 'run'], {
          cwd: ROOT,
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...vars },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let daemonErr = '';
        daemon.stderr?.on('data', (d: Buffer) => (daemonErr += d.toString()));
        let hc: Run | undefined;
        const deadline = Date.now() + 120_000;
        while (Date.now() < deadline) {
          hc = await runNode(dir, [cli, 'healthcheck'], {
            STATUS_ADDRESS: vars.STATUS_ADDRESS ?? '',
          });
          if (hc.code === 0) break;
          await new Promise((r) => setTimeout(r, 1000));
        }
        assert.equal(
          hc?.code,
          0,
          `healthcheck: ${hc?.stderr ?? ''}\ndaemon: ${daemonErr.slice(-2000)}`,
        );
        assert.deepEqual(hc?.loaded, []);
      } finally {
        if (daemon && daemon.exitCode === null) {
          const exited = new Promise((r) => daemon?.on('exit', r));
          daemon.kill('SIGTERM');
          await exited;
        }
        await env.stop();
      }
    });
  });
});
