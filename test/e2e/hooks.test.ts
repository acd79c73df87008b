import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { registerSecret, runSidecar, sidecarEnv, type RunResult } from '../support/sidecar.js';

const explain = (r: RunResult) => `exit ${r.code}\n${r.stdout}\n${r.stderr.slice(-3000)}`;

describe('e2e: hooks and the deployment check, through the real sidecar', function () {
  this.timeout(180_000);
  let env: DevEnv;
  let webhook: http.Server;
  const events: Record<string, unknown>[] = [];
  let hookUrl: string;

  before(async () => {
    env = await startDevEnv();
    webhook = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        events.push(JSON.parse(body) as Record<string, unknown>);
        res.end('ok');
      });
    });
    await new Promise<void>((r) => webhook.listen(0, '127.0.0.1', r));
    hookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/hook?token=s3cr3t-token`;
    registerSecret('s3cr3t-token');
  });
  after(async () => {
    await new Promise((r) => webhook.close(r));
    await env?.stop();
  });

  it('runs the command, posts the webhook and writes the combined PEM each time live/ changes', async () => {
    const out = await mkdtemp(path.join(env.dir, 'hook-out-'));
    const combined = await mkdtemp(path.join(env.dir, 'combined-'));
    const r = await runSidecar(
      ['once'],
      sidecarEnv(env, {
        DOMAINS: 'h1.demo.test',
        HOOK_COMMAND: `env | grep -E '^(ACME_SIDECAR|RENEWED)_' | sort > "${out}/$ACME_SIDECAR_CERT_NAME.$ACME_SIDECAR_PHASE"`,
        HOOK_WEBHOOK_URL: hookUrl,
        COMBINED_PEM_DIR: combined,
      }),
    );
    assert.equal(r.code, 0, explain(r));
    // Placeholder, then staging: two changes of live/.
    assert.deepEqual((await readdir(out)).sort(), [
      'h1.demo.test.self-signed',
      'h1.demo.test.staging',
    ]);
    const vars = Object.fromEntries(
      (await readFile(path.join(out, 'h1.demo.test.staging'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    const live = path.join(env.certDir, 'live', 'h1.demo.test');
    assert.equal(vars.ACME_SIDECAR_FULLCHAIN_PATH, path.join(live, 'fullchain.pem'));
    assert.equal(vars.ACME_SIDECAR_KEY_PATH, path.join(live, 'privkey.pem'));
    assert.equal(vars.RENEWED_LINEAGE, live);
    assert.equal(vars.RENEWED_DOMAINS, 'h1.demo.test');
    const fullchain = await readFile(path.join(live, 'fullchain.pem'), 'utf8');
    assert.ok(vars.ACME_SIDECAR_SERIAL && fullchain.length > 0);
    assert.deepEqual(
      events.map((e) => `${String(e.type)}:${String(e.name)}:${String(e.phase)}`),
      [
        'certificate.deployed:h1.demo.test:self-signed',
        'certificate.deployed:h1.demo.test:staging',
      ],
    );
    assert.ok(!JSON.stringify(events).includes('PRIVATE KEY'), 'no key in the webhook event');
    const pem = path.join(combined, 'h1.demo.test.pem');
    const key = await readFile(path.join(live, 'privkey.pem'), 'utf8');
    assert.equal(await readFile(pem, 'utf8'), fullchain + key);
    assert.equal((await stat(pem)).mode & 0o777, 0o600);
    assert.ok(!r.stderr.includes('s3cr3t-token'), 'the webhook URL (a secret) is never logged');
  });

  it('keeps the webhook URL out of the hook command, and uses HTTP_PROXY only with HOOK_WEBHOOK_PROXY=true', async () => {
    // A stand-in proxy: an HTTP proxy gets the absolute URL as the request target.
    const proxied: string[] = [];
    const proxy = http.createServer((req, res) => {
      proxied.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    try {
      const out = await mkdtemp(path.join(env.dir, 'hook-env-'));
      const before = events.length;
      const direct = await runSidecar(
        ['once'],
        sidecarEnv(env, {
          DOMAINS: 'h3.demo.test',
          HOOK_COMMAND: `env > "${out}/$ACME_SIDECAR_PHASE.env"`,
          HOOK_WEBHOOK_URL: hookUrl,
          HTTP_PROXY: proxyUrl,
          http_proxy: proxyUrl,
        }),
      );
      assert.equal(direct.code, 0, explain(direct));
      const hookEnv = await readFile(path.join(out, 'staging.env'), 'utf8');
      assert.match(hookEnv, /^ACME_SIDECAR_CERT_NAME=h3\.demo\.test$/m);
      assert.doesNotMatch(hookEnv, /HOOK_WEBHOOK_URL|s3cr3t-token/, 'the webhook URL is a secret');
      assert.equal(events.length - before, 2, 'the receiver got both events directly');
      assert.equal(proxied.length, 0, `the proxy saw nothing: ${proxied.join(', ')}`);

      const viaProxy = await runSidecar(
        ['once'],
        sidecarEnv(env, {
          DOMAINS: 'h4.demo.test',
          HOOK_WEBHOOK_URL: hookUrl,
          HOOK_WEBHOOK_PROXY: 'true',
          HTTP_PROXY: proxyUrl,
        }),
      );
      assert.equal(viaProxy.code, 0, explain(viaProxy));
      assert.equal(proxied.length, 2, proxied.join('\n'));
      assert.ok(
        proxied.every((p) => p.startsWith(`POST ${hookUrl}`)),
        proxied.join('\n'),
      );
    } finally {
      await new Promise((r) => proxy.close(r));
    }
  });

  it('a failing command and an unreachable webhook are logged and do not stop issuance', async () => {
    const r = await runSidecar(
      ['once'],
      sidecarEnv(env, {
        DOMAINS: 'h2.demo.test',
        HOOK_COMMAND: 'echo broken >&2; exit 3',
        HOOK_WEBHOOK_URL: 'http://127.0.0.1:1/hook',
      }),
    );
    assert.equal(r.code, 0, explain(r));
    assert.match(r.stdout, /ok {3}h2\.demo\.test .*phase=staging/);
    const failures = r.logs.filter((l) => l.level === 'warn' && l.component === 'hooks');
    assert.ok(
      failures.some((l) => l.hook === 'command'),
      explain(r),
    );
    assert.ok(
      failures.some((l) => l.hook === 'webhook'),
      explain(r),
    );
  });

  it('reports an nginx still serving the old certificate as stale, and current after a reload', async () => {
    // A certificate of this test's own, issued from staging first.
    const staged = await runSidecar(['once'], sidecarEnv(env, { DOMAINS: 'h3.demo.test' }));
    assert.equal(staged.code, 0, explain(staged));
    const check = {
      DOMAINS: 'h3.demo.test',
      STAGING: 'false',
      DEPLOY_CHECK_ENDPOINTS: `127.0.0.1:${env.ports.https}`,
    };
    await env.nginx.reload({
      tlsServers: [{ certName: 'h3.demo.test', serverNames: ['h3.demo.test'] }],
    });
    // Promote to production; nginx keeps serving the staging certificate it loaded.
    const promoted = await runSidecar(['once'], sidecarEnv(env, check));
    assert.equal(promoted.code, 0, explain(promoted));
    const stale = (r: RunResult) =>
      r.logs.some((l) =>
        String(l.message).startsWith('an endpoint still serves an older certificate'),
      );
    // Within the grace period of its own deployment, not yet stale.
    assert.equal(stale(promoted), false, explain(promoted));
    const later = await runSidecar(['once'], sidecarEnv(env, check));
    assert.equal(stale(later), true, explain(later));
    await env.nginx.reload();
    const reloaded = await runSidecar(['once'], sidecarEnv(env, check));
    assert.equal(stale(reloaded), false, explain(reloaded));
  });
});
