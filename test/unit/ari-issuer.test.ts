import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AcmeIssuer } from '../../src/acme/acme-issuer.js';
import { ariCertId } from '../../src/acme/ari-cert-id.js';
import { configureAcmeHttp } from '../../src/acme/http.js';
import type { ChallengeResponder } from '../../src/challenge/responder.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { silentLogger } from '../../src/util/log.js';

/**
 * The issuer's ARI requests against a loopback CA that answers what each
 * test needs: the renewalInfo GET (RFC 9773 section 4) and a newOrder with
 * `replaces` (section 5) that the CA refuses.
 */

const unusedResponder: ChallengeResponder = {
  present: () => Promise.reject(new Error('not reached')),
  verify: () => Promise.reject(new Error('not reached')),
  cleanup: () => Promise.resolve(),
};

interface Seen {
  method: string;
  url: string;
  payload?: Record<string, unknown>;
}

interface CaOptions {
  renewalInfo?: boolean;
  /** The renewalInfo answer: status, body, headers. */
  ari?: { status: number; body: string; headers?: Record<string, string> };
  /** The newOrder answer for a payload. */
  newOrder?: (payload: Record<string, unknown>) => { status: number; body: object };
}

function fakeCa(opts: CaOptions, seen: Seen[]): http.Server {
  return http.createServer((req, res) => {
    const base = `http://${req.headers.host}`;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let payload: Record<string, unknown> | undefined;
      if (chunks.length) {
        const jws = JSON.parse(Buffer.concat(chunks).toString()) as { payload: string };
        payload = jws.payload
          ? (JSON.parse(Buffer.from(jws.payload, 'base64url').toString()) as Record<
              string,
              unknown
            >)
          : undefined;
      }
      seen.push({ method: req.method ?? '', url: req.url ?? '', ...(payload && { payload }) });
      res.setHeader('replay-nonce', `n-${Math.random().toString(36).slice(2)}`);
      const json = (status: number, body: object, type = 'application/json') => {
        res.statusCode = status;
        res.setHeader('content-type', type);
        res.end(JSON.stringify(body));
      };
      if (req.url === '/dir') {
        json(200, {
          newNonce: `${base}/nonce`,
          newAccount: `${base}/new-acct`,
          newOrder: `${base}/new-order`,
          ...(opts.renewalInfo !== false && { renewalInfo: `${base}/ari` }),
        });
      } else if (req.url === '/nonce') {
        res.statusCode = 200;
        res.end();
      } else if (req.url === '/new-acct') {
        res.setHeader('location', `${base}/acct/1`);
        json(201, { status: 'valid' });
      } else if (req.url?.startsWith('/ari/')) {
        const a = opts.ari ?? { status: 404, body: '{}' };
        res.statusCode = a.status;
        for (const [k, v] of Object.entries(a.headers ?? {})) res.setHeader(k, v);
        res.setHeader('content-type', 'application/json');
        res.end(a.body);
      } else if (req.url === '/new-order') {
        const a = opts.newOrder?.(payload ?? {}) ?? { status: 500, body: {} };
        json(a.status, a.body, a.status >= 400 ? 'application/problem+json' : 'application/json');
      } else {
        json(404, {});
      }
    });
  });
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
  );
}

describe('acme: ARI requests of the issuer', function () {
  this.timeout(20_000);
  let dir: string;
  let certPem: string;
  let server: http.Server | undefined;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ari-issuer-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        'k.pem',
        '-out',
        'c.pem',
        '-subj',
        '/CN=a.test',
        '-days',
        '1',
        '-addext',
        'subjectKeyIdentifier=hash',
        '-addext',
        'authorityKeyIdentifier=keyid:always',
      ],
      { cwd: dir, stdio: 'pipe' },
    );
    certPem = readFileSync(join(dir, 'c.pem'), 'utf8');
    // The same per-request deadline as error-messages.test.ts: the adapter is
    // installed once per process, with the first caller's deadline.
    configureAcmeHttp({ timeoutMs: 400 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => {
    server?.closeAllConnections();
    server?.close();
    server = undefined;
  });

  async function issuerFor(opts: CaOptions, seen: Seen[], ari = true): Promise<AcmeIssuer> {
    server = fakeCa(opts, seen);
    const port = await listen(server);
    return new AcmeIssuer({
      phase: 'staging',
      directoryUrl: `http://127.0.0.1:${port}/dir`,
      store: new FsCertStore(join(dir, `store-${Math.random().toString(36).slice(2)}`)),
      responder: unusedResponder,
      log: silentLogger,
      ari,
    });
  }

  it('asks <renewalInfo>/<CertID> and reads the window and the Retry-After', async () => {
    const seen: Seen[] = [];
    const body = {
      suggestedWindow: { start: '2026-06-01T00:00:00Z', end: '2026-06-02T00:00:00Z' },
      explanationURL: 'https://ca.test/why',
    };
    const issuer = await issuerFor(
      { ari: { status: 200, body: JSON.stringify(body), headers: { 'retry-after': '120' } } },
      seen,
    );
    const answer = await issuer.renewalInfo(certPem);
    assert.equal(answer.kind, 'info');
    assert.ok(answer.kind === 'info');
    assert.equal(answer.info.window.start.toISOString(), '2026-06-01T00:00:00.000Z');
    assert.equal(answer.info.explanationUrl, 'https://ca.test/why');
    assert.equal(answer.retryAfterS, 120);
    assert.ok(seen.some((s) => s.method === 'GET' && s.url === `/ari/${ariCertId(certPem)}`));
  });

  const problems: [string, CaOptions['ari'], RegExp][] = [
    ['a malformed body is a problem, not a throw', { status: 200, body: '{not json' }, /JSON/],
    [
      'a window that ends before it starts is a problem',
      {
        status: 200,
        body: JSON.stringify({
          suggestedWindow: { start: '2026-06-02T00:00:00Z', end: '2026-06-01T00:00:00Z' },
        }),
      },
      /not after its start/,
    ],
    [
      'a 500 is a problem, asked once (no retries)',
      { status: 500, body: JSON.stringify({ detail: 'could not find' }) },
      /HTTP 500: could not find/,
    ],
  ];
  for (const [name, ari, want] of problems) {
    it(name, async () => {
      const seen: Seen[] = [];
      const issuer = await issuerFor({ ari }, seen);
      const answer = await issuer.renewalInfo(certPem);
      assert.equal(answer.kind, 'problem');
      assert.ok(answer.kind === 'problem');
      assert.match(answer.problem, want);
      assert.equal(seen.filter((s) => s.url.startsWith('/ari/')).length, 1);
    });
  }

  it('is unsupported when the directory has no renewalInfo, or with ACME_ARI=off', async () => {
    const issuer = await issuerFor({ renewalInfo: false }, []);
    assert.deepEqual(await issuer.renewalInfo(certPem), { kind: 'unsupported' });
    server?.close();
    const off = await issuerFor({}, [], false);
    assert.deepEqual(await off.renewalInfo(certPem), { kind: 'unsupported' });
  });

  for (const [status, type] of [
    [500, 'urn:ietf:params:acme:error:serverInternal'],
    [409, 'urn:ietf:params:acme:error:alreadyReplaced'],
    [403, 'urn:ietf:params:acme:error:unauthorized'],
  ] as const) {
    it(`places a refused replacement (${status}) again at once without replaces`, async () => {
      const seen: Seen[] = [];
      const issuer = await issuerFor(
        {
          newOrder: (p) =>
            p.replaces
              ? { status, body: { type, detail: 'refused as a replacement' } }
              : {
                  status: 400,
                  body: { type: 'urn:ietf:params:acme:error:malformed', detail: 'second' },
                },
        },
        seen,
      );
      const started = performance.now();
      const err = await issuer
        .issue(
          { name: 'a', domains: ['a.test'], source: 'test' } as never,
          'ecdsa-p256',
          undefined,
          {
            replacing: certPem,
          },
        )
        .then(
          () => assert.fail('the fake CA issues nothing'),
          (e: unknown) => e,
        );
      const orders = seen.filter((s) => s.url === '/new-order');
      assert.equal(orders.length, 2, JSON.stringify(orders));
      assert.equal(orders[0]?.payload?.replaces, ariCertId(certPem));
      assert.equal(orders[1]?.payload?.replaces, undefined);
      assert.match(String(err), /second/);
      assert.ok(performance.now() - started < 1500, 'no 5xx retries were waited out');
    });
  }

  it('sends no replaces when the CA offers no ARI', async () => {
    const seen: Seen[] = [];
    const issuer = await issuerFor(
      { renewalInfo: false, newOrder: () => ({ status: 400, body: { detail: 'stop' } }) },
      seen,
    );
    await issuer
      .issue({ name: 'a', domains: ['a.test'], source: 'test' } as never, 'ecdsa-p256', undefined, {
        replacing: certPem,
      })
      .catch(() => undefined);
    const orders = seen.filter((s) => s.url === '/new-order');
    assert.equal(orders.length, 1);
    assert.equal(orders[0]?.payload?.replaces, undefined);
  });
});
