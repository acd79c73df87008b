// Wildcards and DNS-01 (issue 13) against real DNS servers on 127.0.0.1:
// Debian's BIND 9 takes RFC 2136 updates signed with TSIG, and both Pebbles
// resolve every name and TXT through it (-dnsserver), so Pebble validates
// the records the sidecar wrote. Figures (order to valid, propagation wait)
// are printed per provider.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { digTxt, type BindInstance } from '../../devenv/bind.js';
import { startDnsDevEnv, type DnsDevEnv } from '../../devenv/dns-devenv.js';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { startPdns, type PdnsInstance } from '../../devenv/pdns.js';
import { freePort } from '../../devenv/proc.js';
import { dnsRecordKey } from '../../src/store/keys.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { chainVerifiesTo } from '../../src/util/x509.js';
import { registerSecret, runSidecar, sidecarEnv, type RunResult } from '../support/sidecar.js';
import { waitFor } from '../support/wait.js';

function explain(r: RunResult): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr.slice(-6000)}`;
}

/** The names whose `_acme-challenge` TXT the BIND key may change. */
const ACME_NAMES = [
  'dns.test',
  'unnamed.test',
  'badkey.test',
  'slow.test',
  'leftover.test',
  'exec.test',
  'nodns.test',
  'label.test',
  'auth.test',
];

interface Figures {
  orderToValidMs: number;
  propagationMs: number[];
}

/** What a run measured: 'certificate issued' ms and each propagation wait. */
function figures(r: RunResult): Figures {
  const issued = r.logs.filter((l) => l.message === 'certificate issued');
  const waits = r.logs
    .filter((l) => l.message === 'DNS-01 TXT value answered by every server')
    .map((l) => Number(l.waitedMs));
  return { orderToValidMs: Number(issued[issued.length - 1]?.ms), propagationMs: waits };
}

describe('e2e: DNS-01 and wildcards (BIND 9, Pebble 2.9)', function () {
  this.timeout(300_000);
  let lab: DnsDevEnv | undefined;
  let bind: BindInstance;
  let env: DevEnv;
  let dir: string;

  before(async () => {
    lab = await startDnsDevEnv({
      tmpPrefix: 'dns01-',
      bind: {
        acmeNames: ACME_NAMES,
        // The acme-dns pattern: the challenge name points into a zone part
        // only the ACME key may write, and the key may not write at the name itself.
        extraRecords: ['_acme-challenge.cname CNAME cname.validation.test.'],
      },
    });
    ({ bind, env, dir } = lab);
    registerSecret(bind.secret);
  });
  after(() => lab?.stop());

  /** The sidecar's environment for DNS-01 through BIND with RFC 2136. */
  function rfc2136(extra: Record<string, string> = {}): Record<string, string> {
    return sidecarEnv(env, {
      ...lab?.rfc2136Env(),
      DNS_POLLING_INTERVAL: '0.2',
      ...extra,
    });
  }

  async function leaf(name: string): Promise<X509Certificate> {
    return new X509Certificate(await readFile(path.join(env.certDir, 'live', name, 'cert.pem')));
  }

  async function assertIssuedBy(name: string, phase: 'staging' | 'production'): Promise<void> {
    const fullchain = await readFile(path.join(env.certDir, 'live', name, 'fullchain.pem'), 'utf8');
    const root = await (phase === 'staging' ? env.staging : env.production).getRootPem();
    assert.ok(chainVerifiesTo(fullchain, root), `${name} is not from the ${phase} Pebble`);
  }

  it('issues a wildcard plus apex certificate by RFC 2136 updates, staging then production, and removes the TXT values', async () => {
    const DOMAINS = 'wild=*.dns.test+dns.test';
    const staging = await runSidecar(['once'], rfc2136({ DOMAINS }));
    assert.equal(staging.code, 0, explain(staging));
    const cert = await leaf('wild');
    assert.match(cert.subjectAltName ?? '', /DNS:\*\.dns\.test/);
    assert.match(cert.subjectAltName ?? '', /DNS:dns\.test(,|$)/);
    await assertIssuedBy('wild', 'staging');
    // Two values at one name, both added to the set (never replaced).
    const added = staging.logs.filter(
      (l) => l.message === 'DNS-01 TXT value added' && l.fqdn === '_acme-challenge.dns.test',
    );
    assert.equal(added.length, 2, explain(staging));
    assert.deepEqual(digTxt(bind, '_acme-challenge.dns.test'), [], 'TXT values left behind');

    const production = await runSidecar(['once'], rfc2136({ DOMAINS, STAGING: 'false' }));
    assert.equal(production.code, 0, explain(production));
    await assertIssuedBy('wild', 'production');
    assert.deepEqual(digTxt(bind, '_acme-challenge.dns.test'), [], 'TXT values left behind');
    const f = figures(production);
    console.log(
      `      [figures] rfc2136 (BIND): wildcard+apex production order to valid ${f.orderToValidMs} ms; propagation waits ${f.propagationMs.join(', ')} ms`,
    );
  });

  it('without DNS_RESOLVERS, waits for every authoritative server of the zone, found through SOA and NS', async () => {
    // The zone's only NS is ns.test (A 127.0.0.1); NS records carry no port,
    // so the lab's port is DNS_AUTHORITATIVE_PORT. BIND also answers the
    // SOA and NS queries, as DNS_BOOTSTRAP_RESOLVERS (the system resolver
    // does not know the zone test.).
    const env2 = rfc2136({
      DOMAINS: '*.auth.test',
      DNS_BOOTSTRAP_RESOLVERS: bind.address,
      DNS_AUTHORITATIVE_PORT: String(bind.port),
      DNS_PROPAGATION_TIMEOUT: '10',
    });
    delete env2.DNS_RESOLVERS;
    const r = await runSidecar(['once'], env2);
    assert.equal(r.code, 0, explain(r));
    const answered = r.logs.filter(
      (l) => l.message === 'DNS-01 TXT value answered by every server',
    );
    assert.equal(answered.length, 1, explain(r));
    assert.deepEqual(answered[0]?.servers, [`127.0.0.1:${bind.port}`], explain(r));
    assert.deepEqual(digTxt(bind, '_acme-challenge.auth.test'), [], 'TXT left behind');
    const f = figures(r);
    console.log(
      `      [figures] rfc2136 (BIND), servers found through SOA and NS: wildcard staging order to valid ${f.orderToValidMs} ms; propagation wait ${f.propagationMs.join(', ')} ms`,
    );
  });

  it('names an unnamed wildcard entry _.<domain> (live/_.unnamed.test/)', async () => {
    const r = await runSidecar(['once'], rfc2136({ DOMAINS: '*.unnamed.test' }));
    assert.equal(r.code, 0, explain(r));
    assert.match((await leaf('_.unnamed.test')).subjectAltName ?? '', /DNS:\*\.unnamed\.test/);
  });

  it('fails a bad TSIG secret at once with a coded error naming BADSIG, and nothing hangs', async () => {
    const wrong = Buffer.alloc(32, 7).toString('base64');
    registerSecret(wrong);
    const started = performance.now();
    const r = await runSidecar(
      ['once'],
      rfc2136({ DOMAINS: '*.badkey.test', RFC2136_TSIG_SECRET: wrong }),
      60_000,
    );
    const tookMs = performance.now() - started;
    assert.notEqual(r.code, 0, explain(r));
    const text = r.stdout + r.stderr;
    assert.match(text, /DNS_UPDATE_REFUSED/, explain(r));
    assert.match(text, /BADSIG/, explain(r));
    assert.ok(tookMs < 30_000, `took ${Math.round(tookMs)} ms`);
    assert.ok(!text.includes(wrong), 'the secret was printed');
  });

  it('honours DNS_PROPAGATION_TIMEOUT when a resolver never answers the value, and removes the TXT after the failure', async () => {
    const silent = await freePort();
    const started = performance.now();
    const r = await runSidecar(
      ['once'],
      rfc2136({
        DOMAINS: '*.slow.test',
        DNS_RESOLVERS: `${bind.address},127.0.0.1:${silent}`,
        DNS_PROPAGATION_TIMEOUT: '3',
        DNS_POLLING_INTERVAL: '0.5',
      }),
      60_000,
    );
    const tookMs = performance.now() - started;
    assert.notEqual(r.code, 0, explain(r));
    assert.match(r.stdout + r.stderr, /DNS_PROPAGATION_TIMEOUT/, explain(r));
    assert.match(r.stdout + r.stderr, new RegExp(`127\\.0\\.0\\.1:${silent}`), explain(r));
    assert.ok(tookMs >= 3000 && tookMs < 30_000, `took ${Math.round(tookMs)} ms`);
    assert.deepEqual(digTxt(bind, '_acme-challenge.slow.test'), [], 'TXT left after a failure');
  });

  it('follows a CNAME on _acme-challenge and writes the TXT where it points', async () => {
    const r = await runSidecar(['once'], rfc2136({ DOMAINS: '*.cname.test' }));
    assert.equal(r.code, 0, explain(r));
    const added = r.logs.filter((l) => l.message === 'DNS-01 TXT value added');
    assert.deepEqual(
      added.map((l) => l.fqdn),
      ['cname.validation.test'],
      explain(r),
    );
    assert.deepEqual(digTxt(bind, 'cname.validation.test'), []);
  });

  it('fails only the wildcard certificate when DNS_PROVIDER is unset, and issues the others by HTTP-01', async () => {
    const r = await runSidecar(
      ['once'],
      sidecarEnv(env, { DOMAINS: '*.nodns.test,plain.nodns2.test' }),
    );
    const text = r.stdout + r.stderr;
    assert.match(text, /DNS_PROVIDER_MISSING/, explain(r));
    assert.match(text, /DNS_PROVIDER is not set/, explain(r));
    await assertIssuedBy('plain.nodns2.test', 'staging');
  });

  it('uses DNS-01 for a name that is no wildcard with ACME_CHALLENGE=dns-01', async () => {
    const r = await runSidecar(
      ['once'],
      rfc2136({ DOMAINS: 'label.test', ACME_CHALLENGE: 'dns-01' }),
    );
    assert.equal(r.code, 0, explain(r));
    assert.ok(
      r.logs.some(
        (l) => l.message === 'DNS-01 TXT value added' && l.fqdn === '_acme-challenge.label.test',
      ),
      explain(r),
    );
  });

  it('removes at startup a TXT value a killed run recorded and never removed', async () => {
    const fqdn = '_acme-challenge.leftover.test';
    execFileSync('/usr/bin/nsupdate', ['-y', `hmac-sha256:${bind.keyName}:${bind.secret}`], {
      input: `server 127.0.0.1 ${bind.port}\nupdate add ${fqdn}. 60 TXT "stale-value"\nsend\n`,
    });
    assert.deepEqual(digTxt(bind, fqdn), ['stale-value']);
    const store = new FsCertStore(env.certDir);
    await store.store(
      dnsRecordKey(fqdn, 'stale-value'),
      JSON.stringify({
        fqdn,
        value: 'stale-value',
        provider: 'rfc2136',
        createdAt: new Date().toISOString(),
      }),
    );
    const r = await runSidecar(['once'], rfc2136({ DOMAINS: 'label.test' }));
    assert.equal(r.code, 0, explain(r));
    assert.deepEqual(digTxt(bind, fqdn), [], explain(r));
    assert.equal(await store.exists(dnsRecordKey(fqdn, 'stale-value')), false);
  });

  it("issues a wildcard through DNS_PROVIDER=exec with a script calling nsupdate (lego's convention), without the secrets in its environment", async () => {
    const keyFile = path.join(dir, 'exec.key');
    await writeFile(
      keyFile,
      `key "${bind.keyName}." { algorithm hmac-sha256; secret "${bind.secret}"; };\n`,
      { mode: 0o600 },
    );
    const envDump = path.join(dir, 'exec-env.txt');
    const script = path.join(dir, 'dns-hook.sh');
    await writeFile(
      script,
      `#!/bin/sh
set -e
env > "${envDump}"
case "$1" in
  present) line="update add $2 60 TXT \\"$3\\"" ;;
  cleanup) line="update delete $2 TXT \\"$3\\"" ;;
  *) exit 2 ;;
esac
printf 'server 127.0.0.1 ${bind.port}\\n%s\\nsend\\n' "$line" | /usr/bin/nsupdate -k "${keyFile}"
`,
    );
    await chmod(script, 0o755);
    const r = await runSidecar(
      ['once'],
      sidecarEnv(env, {
        DOMAINS: '*.exec.test+exec.test',
        DNS_PROVIDER: 'exec',
        EXEC_PATH: script,
        EXEC_TIMEOUT: '20',
        DNS_RESOLVERS: bind.address,
        DNS_POLLING_INTERVAL: '0.2',
        // Set but unused here: it must not reach the script.
        RFC2136_TSIG_SECRET: bind.secret,
      }),
    );
    assert.equal(r.code, 0, explain(r));
    assert.match((await leaf('_.exec.test')).subjectAltName ?? '', /DNS:\*\.exec\.test/);
    assert.deepEqual(digTxt(bind, '_acme-challenge.exec.test'), []);
    const seen = await readFile(envDump, 'utf8');
    assert.ok(!seen.includes(bind.secret), 'the TSIG secret reached the exec environment');
    const f = figures(r);
    console.log(
      `      [figures] exec (nsupdate to BIND): wildcard+apex staging order to valid ${f.orderToValidMs} ms; propagation waits ${f.propagationMs.join(', ')} ms`,
    );
  });
});

describe('e2e: DNS-01 through the PowerDNS API (pdns-server + sqlite, Pebble 2.9)', function () {
  this.timeout(300_000);
  let pdns: PdnsInstance;
  let env: DevEnv;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'dns01-pdns-'));
    pdns = await startPdns({ dir: path.join(dir, 'pdns') });
    registerSecret(pdns.apiKey);
    env = await startDevEnv({ dnsAddress: pdns.address });
  });
  after(async () => {
    await env?.stop();
    await pdns?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('issues the wildcard plus apex certificate, staging then production, and removes the TXT values', async () => {
    const keyFile = path.join(dir, 'pdns-api-key');
    await writeFile(keyFile, `${pdns.apiKey}\n`, { mode: 0o600 });
    const base = sidecarEnv(env, {
      DOMAINS: '*.pdns.test+pdns.test',
      DNS_PROVIDER: 'pdns',
      PDNS_API_URL: pdns.apiUrl,
      PDNS_API_KEY_FILE: keyFile,
      DNS_RESOLVERS: pdns.address,
      DNS_POLLING_INTERVAL: '0.2',
    });
    const staging = await runSidecar(['once'], base);
    assert.equal(staging.code, 0, explain(staging));
    const production = await runSidecar(['once'], { ...base, STAGING: 'false' });
    assert.equal(production.code, 0, explain(production));
    const fullchain = await readFile(
      path.join(env.certDir, 'live', '_.pdns.test', 'fullchain.pem'),
      'utf8',
    );
    assert.ok(chainVerifiesTo(fullchain, await env.production.getRootPem()));
    assert.match(new X509Certificate(fullchain).subjectAltName ?? '', /DNS:\*\.pdns\.test/);
    const left = execFileSync(
      '/usr/bin/dig',
      ['+short', '-p', String(pdns.port), '@127.0.0.1', '_acme-challenge.pdns.test', 'TXT'],
      { encoding: 'utf8' },
    );
    assert.equal(left.trim(), '', 'TXT values left behind');
    const f = figures(production);
    console.log(
      `      [figures] pdns (API): wildcard+apex production order to valid ${f.orderToValidMs} ms; propagation waits ${f.propagationMs.join(', ')} ms`,
    );
  });
});

describe('e2e: nginx/40-acme-sidecar.sh serves a wildcard certificate by its wildcard name', function () {
  this.timeout(60_000);

  it('renders server_name *.wild.test wild.test (never expanded as a file pattern) and nginx accepts it', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'nginx-wild-'));
    try {
      const live = path.join(dir, 'certs', 'live', '_.wild.test');
      const out = path.join(dir, 'conf.d');
      const cwd = path.join(dir, 'cwd');
      execFileSync('mkdir', ['-p', live, out, cwd]);
      // A file the pattern *.wild.test would match, where the script runs.
      await writeFile(path.join(cwd, 'x.wild.test'), '');
      execFileSync(
        '/usr/bin/openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-keyout',
          path.join(live, 'privkey.pem'),
          '-out',
          path.join(live, 'cert.pem'),
          '-days',
          '1',
          '-subj',
          '/CN=wild.test',
          '-addext',
          'subjectAltName=DNS:*.wild.test,DNS:wild.test',
        ],
        { stdio: 'ignore' },
      );
      await writeFile(
        path.join(live, 'fullchain.pem'),
        await readFile(path.join(live, 'cert.pem')),
      );
      const port = await freePort();
      const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
      const child = spawn('sh', [path.join(root, 'nginx', '40-acme-sidecar.sh')], {
        cwd,
        detached: true,
        stdio: 'ignore',
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          CERT_DIR: path.join(dir, 'certs'),
          ACME_TLS_CONF_DIR: out,
          ACME_TLS_TEMPLATE: path.join(root, 'nginx', 'tls-server.conf.template'),
          ACME_WAIT_SECONDS: '0',
          ACME_RELOAD_INTERVAL: '3600',
          LISTEN_ADDR: '127.0.0.1',
          HTTPS_PORT: String(port),
        },
      });
      const conf = path.join(out, 'acme-tls-_.wild.test.conf');
      try {
        const text = await waitFor(async () => readFile(conf, 'utf8').catch(() => undefined), {
          timeoutMs: 30_000,
          what: 'the rendered TLS server',
        });
        assert.match(text, /server_name \*\.wild\.test wild\.test;/);
      } finally {
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      const nginxConf = path.join(dir, 'nginx.conf');
      await writeFile(
        nginxConf,
        `pid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n  access_log off;\n  client_body_temp_path ${dir}/t1; proxy_temp_path ${dir}/t2; fastcgi_temp_path ${dir}/t3; uwsgi_temp_path ${dir}/t4; scgi_temp_path ${dir}/t5;\n  include ${conf};\n}\n`,
      );
      execFileSync('/usr/sbin/nginx', [
        '-t',
        '-q',
        '-p',
        dir,
        '-c',
        nginxConf,
        '-e',
        `${dir}/error.log`,
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
