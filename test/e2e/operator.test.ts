import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { freePort } from '../../devenv/proc.js';
import { collect, runSidecar, sidecarEnv, startSidecar } from '../support/sidecar.js';
import { waitFor } from '../support/wait.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text exposition format (0.0.4): enough of it to check series and values. */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1] as string] = l[2] as string;
    }
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return samples;
}

/** `ip:port` of every TCP socket in LISTEN state that process `pid` holds (from /proc). */
async function listeningAddresses(pid: number): Promise<string[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1] as string);
  }
  const out: string[] = [];
  for (const [file, v6] of [
    ['/proc/net/tcp', false],
    ['/proc/net/tcp6', true],
  ] as const) {
    const lines = (await readFile(file, 'utf8').catch(() => '')).split('\n').slice(1);
    for (const line of lines) {
      const f = line.trim().split(/\s+/);
      // local_address rem_address st ... inode (field 9); 0A is LISTEN.
      if (f.length < 10 || f[3] !== '0A' || !inodes.has(f[9] as string)) continue;
      const [hex, port] = (f[1] as string).split(':') as [string, string];
      out.push(`${v6 ? hexToIpv6(hex) : hexToIpv4(hex)}:${parseInt(port, 16)}`);
    }
  }
  return out;
}

function hexToIpv4(hex: string): string {
  // Little-endian as the kernel prints it.
  return [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.');
}

function hexToIpv6(hex: string): string {
  return hex === '0'.repeat(32) ? '::' : `[${hex}]`;
}

describe('e2e: operator surface of a running sidecar (status, metrics, health)', function () {
  this.timeout(120_000);
  let env: DevEnv;
  before(async () => {
    env = await startDevEnv();
  });
  after(async () => {
    await env?.stop();
  });

  it('serves /healthz, /readyz, /status matching the store, /metrics in Prometheus format, and the page', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const child = startSidecar(
      ['run'],
      sidecarEnv(env, {
        DOMAINS: 'm1.demo.test, multi=m2.demo.test+m3.demo.test, a*.demo.test',
        STAGING: 'false',
        LOOP_TIME: '0',
        STATUS_ADDRESS: `127.0.0.1:${port}`,
      }),
    );
    const done = collect(child, 100_000);
    try {
      const ready = await waitFor(
        async () => {
          const r = await fetch(`${base}/readyz`);
          return r.status === 200 ? r : undefined;
        },
        { what: '/readyz to answer 200', timeoutMs: 60_000, intervalMs: 200 },
      );
      assert.equal(ready.status, 200, 'ready after the first pass');
      assert.equal(await (await fetch(`${base}/healthz`)).text(), 'ok');

      const status = (await (await fetch(`${base}/status`)).json()) as {
        target: string;
        certificates: {
          name: string;
          phase: string;
          ready: boolean;
          notAfter: string;
          domains: string[];
        }[];
        problems: { value: string; code: string }[];
      };
      assert.equal(status.target, 'production');
      assert.deepEqual(
        status.certificates.map((c) => c.name),
        ['m1.demo.test', 'multi'],
      );
      for (const c of status.certificates) {
        const leaf = new X509Certificate(
          await readFile(path.join(env.certDir, 'live', c.name, 'cert.pem'), 'utf8'),
        );
        assert.equal(c.phase, 'production');
        assert.equal(c.ready, true);
        assert.equal(
          c.notAfter,
          new Date(leaf.validTo).toISOString(),
          `${c.name}: /status matches live/`,
        );
      }
      assert.deepEqual(
        status.problems.map((p) => `${p.value}:${p.code}`),
        ['a*.demo.test:wildcard'],
      );

      const metricsResp = await fetch(`${base}/metrics`);
      assert.match(metricsResp.headers.get('content-type') ?? '', /^text\/plain/);
      const samples = parseMetrics(await metricsResp.text());
      const find = (name: string, labels: Record<string, string>) =>
        samples.filter(
          (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
        );
      for (const c of status.certificates) {
        const exp = find('certmanager_certificate_expiration_timestamp_seconds', { name: c.name });
        assert.equal(exp.length, 1);
        assert.equal(exp[0]?.value, Math.floor(new Date(c.notAfter).getTime() / 1000));
        assert.equal(exp[0]?.labels.issuer_name, 'production');
        assert.equal(
          find('certmanager_certificate_ready_status', { name: c.name, condition: 'True' })[0]
            ?.value,
          1,
        );
        assert.equal(
          find('certmanager_certificate_ready_status', { name: c.name, condition: 'False' })[0]
            ?.value,
          0,
        );
        assert.equal(
          find('certmanager_certificate_not_before_timestamp_seconds', { name: c.name }).length,
          1,
        );
        assert.equal(
          find('certmanager_certificate_renewal_timestamp_seconds', { name: c.name }).length,
          1,
        );
      }
      // 2 certificates x (staging + production) orders, each created once.
      const newOrders = find('certmanager_http_acme_client_request_count', {
        path: 'newOrder',
        status: '201',
      });
      assert.equal(
        newOrders.reduce((n, s) => n + s.value, 0),
        4,
        JSON.stringify(
          samples.filter((s) => s.name.startsWith('certmanager_http_acme_client_request_count')),
        ),
      );
      assert.ok(
        find('certmanager_http_acme_client_request_duration_seconds_count', { path: 'finalize' })
          .length > 0,
      );
      assert.equal(
        find('acme_sidecar_last_pass_success', {})[0]?.value,
        0,
        'a hostname was skipped',
      );

      const page = await fetch(`${base}/`);
      assert.match(page.headers.get('content-type') ?? '', /text\/html/);
      const html = await page.text();
      assert.match(html, /data-cert="m1\.demo\.test"/);
      assert.match(html, /data-cert="multi"/);
      assert.equal((await fetch(`${base}/status`, { method: 'POST' })).status, 405);
      const hc = await runSidecar(['healthcheck'], { STATUS_ADDRESS: `127.0.0.1:${port}` });
      assert.equal(hc.code, 0, hc.stderr);

      // RENEW_COOLDOWN (default 10 minutes): a second forced renewal is refused with the time left.
      const vars = sidecarEnv(env);
      const first = await runSidecar(['renew', 'm1.demo.test'], vars);
      assert.equal(first.code, 0, first.stdout + first.stderr);
      const second = await runSidecar(['renew', 'm1.demo.test'], vars);
      assert.equal(second.code, 1, second.stdout + second.stderr);
      assert.match(second.stdout, /RENEW_COOLDOWN.*try again in (9|10) minutes/);
    } finally {
      child.kill('SIGTERM');
    }
    const r = await done;
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const down = await runSidecar(['healthcheck'], { STATUS_ADDRESS: `127.0.0.1:${port}` });
    assert.equal(down.code, 1, 'healthcheck fails once the daemon is gone');
  });

  it('with STATUS_ADDRESS unset, the status server listens on 127.0.0.1:8080 only', async () => {
    const vars = sidecarEnv(env, { DOMAINS: 'lo.demo.test', LOOP_TIME: '0' });
    delete vars.STATUS_ADDRESS;
    const child = startSidecar(['run'], vars);
    const done = collect(child, 100_000);
    try {
      await waitFor(
        async () =>
          (await fetch('http://127.0.0.1:8080/healthz').catch(() => null))?.ok ? true : undefined,
        { what: 'the default status address to answer', timeoutMs: 60_000, intervalMs: 200 },
      );
      assert.deepEqual(await listeningAddresses(child.pid as number), ['127.0.0.1:8080']);
      const hc = await runSidecar(['healthcheck'], {});
      assert.equal(hc.code, 0, `the image's HEALTHCHECK reaches the default address: ${hc.stderr}`);
    } finally {
      child.kill('SIGTERM');
    }
    const r = await done;
    assert.equal(r.code, 0, r.stderr.slice(-2000));
  });
});
