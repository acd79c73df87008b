import assert from 'node:assert/strict';
import net from 'node:net';
import { esc, renderStatusPage, timeLeftText } from '../../src/http/page.js';
import { PAGE_CSP, startHttpServer, type HttpServerOptions } from '../../src/http/server.js';
import {
  MAX_MESSAGE_LENGTH,
  type CertStatus,
  type StatusSnapshot,
} from '../../src/domain/status.js';
import { buildStatusSnapshot, certState, type StatusInput } from '../../src/http/status.js';
import { cleanMessage } from '../../src/util/redact.js';

const DAY = 24 * 60 * 60;
const NOW = new Date('2026-06-01T12:00:00Z');
const at = (seconds: number) => new Date(NOW.getTime() + seconds * 1000).toISOString();
const XSS = '<script>alert(1)</script>';

function cert(over: Partial<CertStatus> & { name: string }): CertStatus {
  return {
    domains: [over.name],
    phase: 'production',
    notAfter: at(60 * DAY),
    renewAt: at(30 * DAY),
    reason: 'Valid',
    ready: true,
    attempts: 0,
    ...over,
  };
}

function input(over: Partial<StatusInput> = {}): StatusInput {
  return {
    certificates: [cert({ name: 'a.example.com' })],
    problems: [],
    target: 'production',
    platform: 'static',
    lastPass: { startedAt: at(-62), finishedAt: at(-60), ok: true },
    ...over,
  };
}

describe('http: buildStatusSnapshot', () => {
  it('sorts certificates by name whatever order they come in', () => {
    const s = buildStatusSnapshot(
      input({
        certificates: [
          cert({ name: 'c.test' }),
          cert({ name: 'a.test' }),
          cert({ name: 'b.test' }),
        ],
      }),
      NOW,
    );
    assert.deepEqual(
      s.certificates.map((c) => c.name),
      ['a.test', 'b.test', 'c.test'],
    );
  });

  const secondsLeftCases: { name: string; notAfter: string | undefined; want: number | null }[] = [
    { name: 'counts 60 days left as 60 days of seconds', notAfter: at(60 * DAY), want: 60 * DAY },
    { name: 'rounds a partial second down', notAfter: at(10.7), want: 10 },
    { name: 'goes negative once expired', notAfter: at(-DAY), want: -DAY },
    { name: 'is null when nothing is served', notAfter: undefined, want: null },
    { name: 'is null for an unparseable date', notAfter: 'not a date', want: null },
  ];
  for (const c of secondsLeftCases) {
    it(`secondsLeft ${c.name}`, () => {
      const s = buildStatusSnapshot(
        input({ certificates: [cert({ name: 'x.test', notAfter: c.notAfter })] }),
        NOW,
      );
      assert.equal(s.certificates[0]?.secondsLeft, c.want);
    });
  }

  const stateCases: { name: string; over: Partial<CertStatus>; want: string }[] = [
    { name: 'is ok for a ready certificate with 60 days left', over: {}, want: 'ok' },
    {
      name: 'is a warning with 3 days left even before its renewal time',
      over: { notAfter: at(3 * DAY), renewAt: at(DAY) },
      want: 'warning',
    },
    {
      name: 'is a warning past its renewal time with 20 days left',
      over: { notAfter: at(20 * DAY), renewAt: at(-60) },
      want: 'warning',
    },
    {
      name: 'is an error when the last attempt failed, even if the served one is fine',
      over: { lastError: { code: 'ACME_CA_UNREACHABLE', message: 'down', at: at(-10) } },
      want: 'error',
    },
    {
      name: 'is an error when not ready (placeholder served)',
      over: { phase: 'self-signed', ready: false, reason: 'NotIssued' },
      want: 'error',
    },
    {
      name: 'is an error once expired',
      over: { notAfter: at(-1), renewAt: at(-10 * DAY) },
      want: 'error',
    },
  ];
  for (const c of stateCases) {
    it(`state ${c.name}`, () => {
      const s = buildStatusSnapshot(
        input({ certificates: [cert({ name: 'x.test', ...c.over })] }),
        NOW,
      );
      assert.equal(s.certificates[0]?.state, c.want);
      assert.equal(certState(s.certificates[0]!, NOW), c.want);
    });
  }

  it('passes skipped hostnames through in discovery order', () => {
    const problems = [
      { source: 'env:DOMAINS', value: 'bad_host', code: 'HOSTNAME_INVALID', message: 'no' },
      { source: 'label:svc-1', value: '*.x.test', code: 'WILDCARD', message: 'needs DNS-01' },
    ];
    const s = buildStatusSnapshot(input({ problems }), NOW);
    assert.deepEqual(s.problems, problems);
  });

  it('stamps generatedAt, target and platform, and the last pass', () => {
    const s = buildStatusSnapshot(input({ target: 'staging', platform: 'docker' }), NOW);
    assert.equal(s.generatedAt, NOW.toISOString());
    assert.equal(s.target, 'staging');
    assert.equal(s.platform, 'docker');
    assert.deepEqual(s.lastPass, { startedAt: at(-62), finishedAt: at(-60), ok: true });
  });

  it('gives lastPass null before the first pass, and null (not absent) optional fields', () => {
    const s = buildStatusSnapshot(
      input({
        lastPass: undefined,
        certificates: [cert({ name: 'x.test', notAfter: undefined, renewAt: undefined })],
      }),
      NOW,
    );
    assert.equal(s.lastPass, null);
    const c = s.certificates[0]!;
    assert.equal(c.notAfter, null);
    assert.equal(c.renewAt, null);
    assert.equal(c.lastError, null);
    assert.equal(c.nextRetry, null);
  });

  it('copies only the listed fields, so a field added to CertStatus later cannot leak', () => {
    const leaky = { ...cert({ name: 'x.test' }), privkey: '-----BEGIN PRIVATE KEY-----' };
    const s = buildStatusSnapshot(input({ certificates: [leaky] }), NOW);
    assert.deepEqual(Object.keys(s.certificates[0]!).sort(), [
      'attempts',
      'deployment',
      'domains',
      'explanationUrl',
      'lastError',
      'localState',
      'name',
      'nextRetry',
      'notAfter',
      'phase',
      'profile',
      'ready',
      'reason',
      'recovered',
      'renewAt',
      'renewSource',
      'secondsLeft',
      'state',
    ]);
    assert.ok(!JSON.stringify(s).includes('PRIVATE KEY'));
  });

  it('redacts a PEM private key inside an error message and bounds its length', () => {
    const pem = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----';
    const s = buildStatusSnapshot(
      input({
        certificates: [
          cert({ name: 'a.test', lastError: { code: 'X', message: `oops ${pem} end`, at: at(0) } }),
          cert({ name: 'b.test', lastError: { code: 'X', message: 'y'.repeat(5000), at: at(0) } }),
        ],
      }),
      NOW,
    );
    assert.equal(s.certificates[0]?.lastError?.message, 'oops [redacted private key] end');
    assert.equal(s.certificates[1]?.lastError?.message.length, MAX_MESSAGE_LENGTH);
  });
});

describe('http: renderStatusPage', () => {
  function page(over: Partial<StatusInput> = {}): string {
    return renderStatusPage(buildStatusSnapshot(input(over), NOW), NOW);
  }

  it('escapes untrusted text everywhere it appears', () => {
    const html = page({
      platform: XSS,
      certificates: [
        cert({
          name: `n${XSS}`,
          domains: [`${XSS}.example.com`, 'ok.example.com'],
          lastError: { code: `C${XSS}`, message: `CA said ${XSS} & "quoted"`, at: at(-5) },
          nextRetry: at(300),
        }),
      ],
      problems: [{ source: `s${XSS}`, value: `v${XSS}`, code: `c${XSS}`, message: `m${XSS}` }],
      lastPass: { startedAt: at(-3), finishedAt: at(-1), ok: false, discoveryError: `d${XSS}` },
    });
    assert.ok(!/<script/i.test(html), 'no script element in the page');
    const escaped = '&lt;script&gt;alert(1)&lt;/script&gt;';
    for (const expected of [
      `n${escaped}`,
      `${escaped}.example.com`,
      `CA said ${escaped} &amp; &quot;quoted&quot;`,
      `C${escaped}`,
      `v${escaped}`,
      `m${escaped}`,
      `d${escaped}`,
    ]) {
      assert.ok(html.includes(expected), `page contains ${expected}`);
    }
    assert.ok(html.includes(`data-cert="n${escaped}"`), 'attribute escaped too');
  });

  it('escapes quotes so an attribute cannot be closed early', () => {
    assert.equal(esc(`"' onmouseover=x`), '&quot;&#39; onmouseover=x');
  });

  it('marks each certificate with data-cert and its data-state', () => {
    const html = page({
      certificates: [
        cert({ name: 'good.test' }),
        cert({ name: 'soon.test', notAfter: at(3 * DAY), renewAt: at(-DAY) }),
        cert({
          name: 'bad.test',
          phase: 'self-signed',
          ready: false,
          attempts: 3,
          lastError: { code: 'ACME_CA_UNREACHABLE', message: 'connect ECONNREFUSED', at: at(-5) },
          nextRetry: at(240),
        }),
      ],
    });
    assert.match(html, /data-cert="good\.test" data-state="ok"/);
    assert.match(html, /data-cert="soon\.test" data-state="warning"/);
    assert.match(html, /data-cert="bad\.test" data-state="error"/);
    assert.ok(html.includes('ACME_CA_UNREACHABLE'));
    assert.ok(html.includes('connect ECONNREFUSED'));
    assert.ok(html.includes('next retry 2026-06-01 12:04 UTC (in 4 minutes)'));
    assert.ok(
      html.indexOf('data-cert="bad.test"') < html.indexOf('data-cert="soon.test"') &&
        html.indexOf('data-cert="soon.test"') < html.indexOf('data-cert="good.test"'),
      'worst first',
    );
  });

  it('shows time left as text and as a bar that is a fraction of 90 days', () => {
    const html = page({ certificates: [cert({ name: 'x.test', notAfter: at(45 * DAY) })] });
    assert.ok(html.includes('45 days left'));
    assert.ok(html.includes('style="width:50.0%"'));
  });

  it('caps the bar at 100% for a certificate longer than 90 days', () => {
    const html = page({ certificates: [cert({ name: 'x.test', notAfter: at(365 * DAY) })] });
    assert.ok(html.includes('style="width:100.0%"'));
  });

  it('refreshes itself and loads nothing from anywhere', () => {
    const html = page();
    assert.ok(html.includes('<meta http-equiv="refresh" content="30">'));
    assert.ok(!/<(script|link|img|iframe|object)\b/i.test(html));
    assert.ok(!/\b(src|srcset)=/i.test(html));
    assert.ok(!/@import|url\(/i.test(html));
    assert.ok(!/https?:\/\//i.test(html));
  });

  it('says so when no pass has finished and nothing is wanted', () => {
    const html = page({ lastPass: undefined, certificates: [] });
    assert.ok(html.includes('no pass finished yet'));
    assert.ok(html.includes('No certificates wanted yet'));
  });

  it('lists skipped hostnames in their own section', () => {
    const html = page({
      problems: [
        {
          source: 'env:DOMAINS',
          value: 'bad_host',
          code: 'HOSTNAME_INVALID',
          message: 'underscore',
        },
      ],
    });
    assert.ok(html.includes('Skipped hostnames'));
    assert.match(html, /<tr data-problem><td><code>bad_host<\/code><\/td><td>env:DOMAINS<\/td>/);
  });

  const leftCases: [number | null, string][] = [
    [61 * DAY + 3600, '61 days left'],
    [2 * DAY, '2 days left'],
    [DAY + 5, '24 hours left'],
    [3600, '1 hour left'],
    [90, '1 minute left'],
    [0, 'expired just now'],
    [-3 * DAY, 'expired 3 days ago'],
    [null, 'no expiry known'],
  ];
  for (const [seconds, text] of leftCases) {
    it(`writes ${seconds} seconds left as "${text}"`, () => {
      assert.equal(timeLeftText(seconds), text);
    });
  }
});

describe('http: startHttpServer', () => {
  let snapshot: StatusSnapshot;
  let readiness: { ok: boolean; reasons: string[] };
  const warnings: { m: string; f?: object }[] = [];
  let server: { port: number; close(): Promise<void> } | undefined;

  async function start(over: Partial<HttpServerOptions> = {}) {
    server = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      status: () => snapshot,
      ready: () => readiness,
      metrics: async () => ({ contentType: 'text/plain; version=0.0.4', body: 'up 1\n' }),
      log: { info: () => {}, warn: (m, f) => warnings.push({ m, f }) },
      now: () => NOW,
      ...over,
    });
    return `http://127.0.0.1:${server.port}`;
  }

  beforeEach(() => {
    snapshot = buildStatusSnapshot(input(), NOW);
    readiness = { ok: true, reasons: [] };
    warnings.length = 0;
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  const routes: { path: string; status: number; type: RegExp }[] = [
    { path: '/healthz', status: 200, type: /^text\/plain; charset=utf-8$/ },
    { path: '/readyz', status: 200, type: /^text\/plain; charset=utf-8$/ },
    { path: '/status', status: 200, type: /^application\/json/ },
    { path: '/', status: 200, type: /^text\/html; charset=utf-8$/ },
    { path: '/?refresh=1', status: 200, type: /^text\/html; charset=utf-8$/ },
    { path: '/metrics', status: 200, type: /^text\/plain; version=0\.0\.4$/ },
    { path: '/nope', status: 404, type: /^text\/plain/ },
    { path: '/status/', status: 404, type: /^text\/plain/ },
  ];
  for (const r of routes) {
    it(`GET ${r.path} answers ${r.status} with the right type and safe headers`, async () => {
      const base = await start();
      const res = await fetch(base + r.path);
      await res.arrayBuffer();
      assert.equal(res.status, r.status);
      assert.match(res.headers.get('content-type') ?? '', r.type);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.match(res.headers.get('content-security-policy') ?? '', /^default-src 'none'/);
    });
  }

  it('GET /healthz says ok', async () => {
    const base = await start();
    assert.equal(await (await fetch(`${base}/healthz`)).text(), 'ok');
  });

  it('GET /status serves the snapshot as JSON', async () => {
    const base = await start();
    assert.deepEqual(await (await fetch(`${base}/status`)).json(), snapshot);
  });

  it('GET / serves the page under a CSP that allows inline style and nothing else', async () => {
    const base = await start();
    const res = await fetch(`${base}/`);
    const html = await res.text();
    assert.equal(res.headers.get('content-security-policy'), PAGE_CSP);
    assert.ok(PAGE_CSP.startsWith("default-src 'none'; style-src 'unsafe-inline'"));
    assert.match(html, /data-cert="a\.example\.com" data-state="ok"/);
  });

  it('GET /readyz answers 503 with every reason when not ready', async () => {
    readiness = { ok: false, reasons: ['no pass finished yet', 'a.test: self-signed'] };
    const base = await start();
    const res = await fetch(`${base}/readyz`);
    assert.equal(res.status, 503);
    assert.equal(await res.text(), 'not ready\n- no pass finished yet\n- a.test: self-signed\n');
  });

  it('GET /readyz cleans each reason as /status does: no private key, bounded length', async () => {
    const key =
      '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n-----END PRIVATE KEY-----';
    const long = `discovery failed: ${'x'.repeat(5000)}`;
    readiness = { ok: false, reasons: [`discovery failed: bad answer ${key}`, long] };
    const base = await start();
    const text = await (await fetch(`${base}/readyz`)).text();
    assert.doesNotMatch(text, /PRIVATE KEY|MIGHAgEA/);
    assert.match(text, /- discovery failed: bad answer \[redacted private key\]\n/);
    const lines = text.split('\n');
    assert.equal(lines[2], `- ${cleanMessage(long)}`);
    assert.ok((lines[2] ?? '').length <= MAX_MESSAGE_LENGTH + 2, 'a long reason is cut');
  });

  it('GET /metrics is 404 when no metrics are given', async () => {
    const base = await start({ metrics: undefined });
    const res = await fetch(`${base}/metrics`);
    await res.arrayBuffer();
    assert.equal(res.status, 404);
  });

  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    it(`${method} is refused with 405 and Allow: GET, HEAD (read-only)`, async () => {
      const base = await start();
      for (const path of ['/', '/status', '/healthz', '/readyz', '/metrics']) {
        const res = await fetch(base + path, {
          method,
          body: method === 'DELETE' ? undefined : 'x',
        });
        await res.arrayBuffer();
        assert.equal(res.status, 405, `${method} ${path}`);
        assert.equal(res.headers.get('allow'), 'GET, HEAD');
      }
    });
  }

  it('HEAD answers like GET without a body', async () => {
    const base = await start();
    const get = await fetch(`${base}/status`);
    const len = (await get.arrayBuffer()).byteLength;
    const head = await fetch(`${base}/status`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(len));
    assert.equal((await head.arrayBuffer()).byteLength, 0);
  });

  it('answers 500 without the cause when building the status throws, and logs it', async () => {
    const base = await start({
      status: () => {
        throw new Error('secret internals');
      },
    });
    const res = await fetch(`${base}/status`);
    assert.equal(res.status, 500);
    assert.equal(await res.text(), 'internal error\n');
    assert.equal(warnings.length, 1);
    assert.match(JSON.stringify(warnings[0]?.f), /secret internals/);
  });

  it('listens on loopback at the port it reports', async () => {
    await start();
    assert.ok(server!.port > 0);
    const res = await fetch(`http://127.0.0.1:${server!.port}/healthz`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });

  it('rejects when its port is taken', async () => {
    await start();
    await assert.rejects(
      startHttpServer({
        host: '127.0.0.1',
        port: server!.port,
        status: () => snapshot,
        ready: () => readiness,
      }),
      /EADDRINUSE/,
    );
  });

  it('close() resolves promptly with a keep-alive connection still open', async () => {
    await start();
    // A raw client that keeps its connection open after one answered request.
    const sock = net.connect(server!.port, '127.0.0.1');
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    try {
      await new Promise<void>((resolve, reject) => {
        let got = '';
        sock.on('data', (d: Buffer) => {
          got += d.toString();
          if (got.includes('\r\n\r\nok')) resolve();
        });
        sock.once('error', reject);
        sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
      });
      assert.equal(sock.destroyed, false, 'the connection is still open');
      const t0 = Date.now();
      await server!.close();
      assert.ok(Date.now() - t0 < 1000, `closed in ${Date.now() - t0} ms`);
      server = undefined;
      await closed; // the server ended our idle connection
    } finally {
      sock.destroy();
    }
  });

  it('cuts a client that never finishes its headers (slowloris)', async () => {
    await start({ timeouts: { headersMs: 300, requestMs: 600 } });
    const t0 = Date.now();
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(server!.port, '127.0.0.1', () => {
        sock.write('GET / HTTP/1.1\r\nHost: x\r\n');
      });
      let got = '';
      sock.on('data', (d) => (got += d.toString()));
      sock.on('close', () => resolve(got));
      sock.on('error', reject);
    });
    const took = Date.now() - t0;
    assert.match(answer, /^HTTP\/1\.1 408/);
    assert.ok(took >= 250 && took < 3000, `cut after ${took} ms`);
  });
});
