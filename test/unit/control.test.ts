import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ControlClientError,
  controlRequest,
  describeConnectError,
  fetchStatus,
  requestRenew,
} from '../../src/control/client.js';
import {
  commandExitCode,
  formatRenewResults,
  formatStatusTable,
  termSafe,
} from '../../src/control/format.js';
import { reconcilerHandlers, toRenewResult } from '../../src/control/handlers.js';
import {
  ControlHandlerError,
  ROUTES,
  type ControlHandlers,
  type RenewResult,
  type RenewTarget,
} from '../../src/control/protocol.js';
import {
  ControlSocketError,
  MAX_BODY_BYTES,
  startControlServer,
  type ControlServerHandle,
  type ControlServerOptions,
} from '../../src/control/server.js';
import type { CertSpec } from '../../src/domain/types.js';
import type { CertStatus, StatusSnapshot } from '../../src/domain/status.js';
import { buildStatusSnapshot } from '../../src/http/status.js';
import { FixedClock } from '../../src/lifecycle/clock.js';

const DAY = 24 * 60 * 60;
const NOW = new Date('2026-06-01T12:00:00Z');
const at = (seconds: number) => new Date(NOW.getTime() + seconds * 1000).toISOString();

function cert(over: Partial<CertStatus> & { name: string }): CertStatus {
  return {
    domains: [over.name],
    phase: 'production',
    notAfter: at(60 * DAY),
    renewAt: at(30 * DAY),
    serial: 'ABC123',
    reason: 'Valid',
    ready: true,
    attempts: 0,
    ...over,
  };
}

function snapshot(certificates: CertStatus[], over: Partial<StatusSnapshot> = {}): StatusSnapshot {
  return {
    ...buildStatusSnapshot(
      {
        certificates,
        problems: [],
        target: 'production',
        platform: 'static',
        lastPass: { startedAt: at(-62), finishedAt: at(-60), ok: true },
      },
      NOW,
    ),
    ...over,
  };
}

const SNAPSHOT = snapshot([
  cert({ name: 'www.example.com' }),
  cert({
    name: 'api.example.com',
    phase: 'staging',
    ready: false,
    lastError: { code: 'ACME_RATE_LIMITED', message: 'too many certificates', at: at(-600) },
    nextRetry: at(3600),
  }),
]);

/** Handlers that record what they were asked. */
function fakeHandlers(over: Partial<ControlHandlers> = {}) {
  const calls: RenewTarget[] = [];
  const handlers: ControlHandlers = {
    status: () => SNAPSHOT,
    renew: async (target) => {
      calls.push(target);
      if ('all' in target) {
        return [
          { name: 'api.example.com', ok: true, phase: 'production', serial: '01' },
          { name: 'www.example.com', ok: true, phase: 'production', serial: '02' },
        ];
      }
      if (target.name !== 'www.example.com') {
        throw new ControlHandlerError('NOT_FOUND', `no certificate named "${target.name}"`);
      }
      return [{ name: target.name, ok: true, phase: 'production', serial: '02' }];
    },
    ...over,
  };
  return { handlers, calls };
}

/** A request with a body sent exactly as given (the client always sends valid JSON). */
function raw(
  socketPath: string,
  method: string,
  path: string,
  body?: string | Buffer,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown,
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof Error);
    return err;
  }
  assert.fail('expected a rejection');
}

/** A socket file at `path` whose server was killed: nothing answers on it. */
async function staleSocket(path: string): Promise<void> {
  const script = `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`;
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (_code, signal) =>
      signal === 'SIGKILL' ? resolve() : reject(new Error('child did not die as planned')),
    );
  });
  assert.ok((await fs.lstat(path)).isSocket(), 'the dead server left its socket behind');
}

describe('control: socket server', () => {
  let dir: string;
  let sock: string;
  let server: ControlServerHandle | undefined;
  const warnings: string[] = [];

  const start = async (
    handlers: ControlHandlers = fakeHandlers().handlers,
    over: Partial<ControlServerOptions> = {},
  ) => {
    server = await startControlServer({
      path: sock,
      handlers,
      log: { info: () => undefined, warn: (m, f) => warnings.push(`${m} ${JSON.stringify(f)}`) },
      ...over,
    });
    return server;
  };

  beforeEach(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'control-'));
    sock = join(dir, 'control.sock');
    warnings.length = 0;
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('serves the status snapshot unchanged', async () => {
    await start();
    assert.deepEqual(await fetchStatus(sock), SNAPSHOT);
  });

  it('renews one certificate by name', async () => {
    const { handlers, calls } = fakeHandlers();
    await start(handlers);
    const results = await requestRenew(sock, { name: 'www.example.com' });
    assert.deepEqual(calls, [{ name: 'www.example.com' }]);
    assert.deepEqual(results, [
      { name: 'www.example.com', ok: true, phase: 'production', serial: '02' },
    ]);
  });

  it('renews every certificate with {all: true}', async () => {
    const { handlers, calls } = fakeHandlers();
    await start(handlers);
    const results = await requestRenew(sock, { all: true });
    assert.deepEqual(calls, [{ all: true }]);
    assert.deepEqual(
      results.map((r) => r.name),
      ['api.example.com', 'www.example.com'],
    );
  });

  it('answers 404 for an unknown name, and the client error names the certificate', async () => {
    await start();
    const r = await raw(sock, 'POST', ROUTES.renew, JSON.stringify({ name: 'nope.example.com' }));
    assert.equal(r.status, 404);
    assert.deepEqual(r.json, {
      error: { code: 'NOT_FOUND', message: 'no certificate named "nope.example.com"' },
    });
    const err = await rejection(requestRenew(sock, { name: 'nope.example.com' }));
    assert.ok(err instanceof ControlClientError);
    assert.equal(err.code, 'REQUEST_FAILED');
    assert.equal(err.status, 404);
    assert.equal(err.serverCode, 'NOT_FOUND');
    assert.match(err.message, /nope\.example\.com/);
  });

  it('answers 400 to a body that is not JSON', async () => {
    await start();
    const r = await raw(sock, 'POST', ROUTES.renew, '{"name": ');
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { error: { code: 'BAD_REQUEST', message: 'the body is not JSON' } });
  });

  const badBodies: { name: string; body: string }[] = [
    { name: 'an empty object', body: '{}' },
    { name: 'an empty name', body: '{"name": ""}' },
    { name: 'a name that is not a string', body: '{"name": 42}' },
    { name: 'all that is not true', body: '{"all": false}' },
    { name: 'both name and all', body: '{"name": "a", "all": true}' },
    { name: 'an array', body: '[{"name": "a"}]' },
    { name: 'null', body: 'null' },
    { name: 'no body at all', body: '' },
  ];
  for (const c of badBodies) {
    it(`answers 400 to ${c.name}, without calling the handler`, async () => {
      const { handlers, calls } = fakeHandlers();
      await start(handlers);
      const r = await raw(sock, 'POST', ROUTES.renew, c.body);
      assert.equal(r.status, 400);
      assert.equal((r.json as { error: { code: string } }).error.code, 'BAD_REQUEST');
      assert.deepEqual(calls, []);
    });
  }

  it('answers 413 to a body over 64 kB', async () => {
    const { handlers, calls } = fakeHandlers();
    await start(handlers);
    const big = JSON.stringify({ name: 'a'.repeat(MAX_BODY_BYTES) });
    const r = await raw(sock, 'POST', ROUTES.renew, big);
    assert.equal(r.status, 413);
    assert.deepEqual(calls, []);
  });

  it('answers 405 with Allow to the wrong method, and 404 to an unknown route', async () => {
    await start();
    const getRenew = await raw(sock, 'GET', ROUTES.renew);
    assert.equal(getRenew.status, 405);
    assert.equal(getRenew.headers.allow, 'POST');
    const postStatus = await raw(sock, 'POST', ROUTES.status, '{}');
    assert.equal(postStatus.status, 405);
    assert.equal(postStatus.headers.allow, 'GET');
    assert.equal((await raw(sock, 'GET', '/status')).status, 404);
    assert.equal((await raw(sock, 'GET', '/v1/status/../renew')).status, 405);
  });

  it('answers 500 without the cause when a handler fails unexpectedly, and logs it', async () => {
    await start(
      fakeHandlers({
        renew: () => Promise.reject(new Error('secret internals')),
      }).handlers,
    );
    const r = await raw(sock, 'POST', ROUTES.renew, '{"all": true}');
    assert.equal(r.status, 500);
    assert.doesNotMatch(JSON.stringify(r.json), /secret internals/);
    assert.match(warnings.join('\n'), /secret internals/);
  });

  it('answers 503 when the handler says it cannot yet', async () => {
    await start(
      fakeHandlers({
        renew: () => Promise.reject(new ControlHandlerError('UNAVAILABLE', 'not yet')),
      }).handlers,
    );
    const err = await rejection(requestRenew(sock, { all: true }));
    assert.ok(err instanceof ControlClientError);
    assert.equal(err.status, 503);
    assert.equal(err.message, 'not yet');
  });

  it('answers 504 when a renewal outlasts the handler timeout', async () => {
    await start(fakeHandlers({ renew: () => new Promise(() => undefined) }).handlers, {
      timeouts: { handlerMs: 200 },
    });
    const r = await raw(sock, 'POST', ROUTES.renew, '{"all": true}');
    assert.equal(r.status, 504);
    assert.match(JSON.stringify(r.json), /acme-sidecar status/);
  });

  it('drops a client that never finishes its request head', async () => {
    await start(undefined, { timeouts: { headersMs: 200, requestMs: 200 } });
    const started = Date.now();
    const ended = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ path: sock }, () =>
        s.write('GET /v1/status HTTP/1.1\r\nHost: x\r\n'),
      );
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('close', () => resolve(got));
      s.on('error', reject);
    });
    assert.match(ended, /^HTTP\/1\.1 408/);
    assert.ok(Date.now() - started < 5_000);
  });

  it('creates the socket with mode 0600 and leaves no temporary file beside it', async () => {
    await start();
    const st = await fs.lstat(sock);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.deepEqual(await fs.readdir(dir), ['control.sock']);
  });

  it('removes its socket file on close', async () => {
    const s = await start();
    await s.close();
    server = undefined;
    await assert.rejects(fs.lstat(sock), { code: 'ENOENT' });
  });

  it('replaces a stale socket left by a server that died', async () => {
    await staleSocket(sock);
    await start();
    assert.deepEqual(await fetchStatus(sock), SNAPSHOT);
    assert.equal((await fs.lstat(sock)).mode & 0o777, 0o600);
  });

  it('refuses a socket another server still answers on, and leaves it working', async () => {
    const other = net.createServer((c) => c.end());
    await new Promise<void>((r) => other.listen(sock, r));
    try {
      const err = await rejection(start());
      assert.ok(err instanceof ControlSocketError);
      assert.match(err.message, /in use/);
      await new Promise<void>((resolve, reject) =>
        net.connect({ path: sock }, resolve).on('error', reject),
      );
    } finally {
      await new Promise((r) => other.close(r));
    }
  });

  it('never deletes a regular file at the path: startup fails and says so', async () => {
    await fs.writeFile(sock, 'precious');
    const err = await rejection(start());
    assert.ok(err instanceof ControlSocketError);
    assert.match(err.message, new RegExp(`${sock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(err.message, /regular file, not a socket/);
    assert.match(err.message, /move it away/);
    assert.equal(await fs.readFile(sock, 'utf8'), 'precious');
    assert.deepEqual(await fs.readdir(dir), ['control.sock']);
  });

  it('refuses a symbolic link at the path without following it', async () => {
    const target = join(dir, 'elsewhere');
    await fs.writeFile(target, 'precious');
    await fs.symlink(target, sock);
    const err = await rejection(start());
    assert.match(err.message, /symbolic link/);
    assert.equal(await fs.readFile(target, 'utf8'), 'precious');
  });
});

describe('control: client errors', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'control-client-'));
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  it('asks whether the daemon runs when there is no socket', async () => {
    const path = join(dir, 'control.sock');
    const err = await rejection(fetchStatus(path));
    assert.ok(err instanceof ControlClientError);
    assert.equal(err.code, 'NO_DAEMON');
    assert.ok(err.message.startsWith('is `acme-sidecar run` running? no socket at '));
    assert.ok(err.message.includes(path));
  });

  it('asks whether the daemon runs when nothing answers on a stale socket', async () => {
    const path = join(dir, 'control.sock');
    await staleSocket(path);
    const err = await rejection(fetchStatus(path));
    assert.ok(err instanceof ControlClientError);
    assert.equal(err.code, 'NO_DAEMON');
    assert.match(err.message, /^is `acme-sidecar run` running\?/);
  });

  it("tells the user to run as the sidecar's user on EACCES", () => {
    // Tests run as root here, which the socket's mode does not stop.
    const eacces = Object.assign(new Error('connect EACCES /x/control.sock'), { code: 'EACCES' });
    const err = describeConnectError(eacces, '/x/control.sock');
    assert.equal(err.code, 'PERMISSION');
    assert.ok(
      err.message.startsWith("permission denied on /x/control.sock: run as the sidecar's user"),
    );
  });

  it('gives up after its timeout on a daemon that does not answer', async () => {
    const path = join(dir, 'control.sock');
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(path, r));
    try {
      const started = Date.now();
      const err = await rejection(
        controlRequest(path, 'GET', ROUTES.status, undefined, { timeoutMs: 200 }),
      );
      assert.ok(err instanceof ControlClientError);
      assert.equal(err.code, 'TIMEOUT');
      assert.ok(Date.now() - started < 2_000);
    } finally {
      silent.close();
      await new Promise((r) => setImmediate(r));
    }
  });

  it('neutralizes control characters in messages the daemon sends', async () => {
    const path = join(dir, 'control.sock');
    const server = await startControlServer({
      path,
      handlers: {
        status: () => SNAPSHOT,
        renew: () => Promise.reject(new ControlHandlerError('NOT_FOUND', 'no \x1b[2Jcert\x07')),
      },
    });
    try {
      const err = await rejection(requestRenew(path, { name: 'x' }));
      assert.equal(err.message, 'no \\x1b[2Jcert\\x07');
    } finally {
      await server.close();
    }
  });
});

describe('control: reconcilerHandlers', () => {
  const specs: CertSpec[] = [
    { name: 'b.example.com', domains: ['b.example.com'], source: 'env:DOMAINS' },
    { name: 'a.example.com', domains: ['a.example.com'], source: 'env:DOMAINS' },
  ];

  function fakeReconciler(statusOf: (spec: CertSpec) => CertStatus = (s) => cert(s)) {
    const calls: { name: string; force: boolean | undefined; signal: AbortSignal | undefined }[] =
      [];
    const status = new Map<string, CertStatus>();
    return {
      calls,
      status,
      async reconcileOne(spec: CertSpec, signal?: AbortSignal, opts?: { force?: boolean }) {
        calls.push({ name: spec.name, force: opts?.force, signal });
        await new Promise((r) => setTimeout(r, spec.name === 'b.example.com' ? 20 : 0));
        const st = statusOf(spec);
        status.set(spec.name, st);
        return st;
      },
    };
  }

  function handlers(
    reconciler: ReturnType<typeof fakeReconciler>,
    over: {
      specs?: readonly CertSpec[] | undefined;
      signal?: AbortSignal;
      clock?: FixedClock;
      cooldownSeconds?: number;
    } = {},
  ) {
    const clock = over.clock ?? new FixedClock(NOW);
    return reconcilerHandlers({
      status: () => SNAPSHOT,
      specs: () => ('specs' in over ? over.specs : specs),
      reconciler,
      signal: over.signal ?? new AbortController().signal,
      now: () => clock.now(),
      cooldownSeconds: over.cooldownSeconds ?? 600,
    });
  }

  it('forces a reconcile of the named certificate with the daemon signal', async () => {
    const r = fakeReconciler();
    const signal = new AbortController().signal;
    const results = await handlers(r, { signal }).renew({ name: 'a.example.com' });
    assert.deepEqual(r.calls, [{ name: 'a.example.com', force: true, signal }]);
    assert.deepEqual(results, [
      { name: 'a.example.com', ok: true, phase: 'production', serial: 'ABC123' },
    ]);
  });

  it('renews all in discovery order, whatever order they finish in', async () => {
    const r = fakeReconciler();
    const results = await handlers(r).renew({ all: true });
    assert.deepEqual(
      results.map((x) => x.name),
      ['b.example.com', 'a.example.com'],
    );
    assert.ok(r.calls.every((c) => c.force === true));
  });

  it('throws NOT_FOUND naming the certificate and the known ones', async () => {
    const err = await rejection(handlers(fakeReconciler()).renew({ name: 'c.example.com' }));
    assert.ok(err instanceof ControlHandlerError);
    assert.equal(err.code, 'NOT_FOUND');
    assert.equal(
      err.message,
      'no certificate named "c.example.com" (known: b.example.com, a.example.com)',
    );
  });

  it('throws UNAVAILABLE before the first discovery and once shutting down', async () => {
    const before = await rejection(
      handlers(fakeReconciler(), { specs: undefined }).renew({ all: true }),
    );
    assert.equal((before as ControlHandlerError).code, 'UNAVAILABLE');
    const ac = new AbortController();
    ac.abort();
    const after = await rejection(
      handlers(fakeReconciler(), { signal: ac.signal }).renew({ all: true }),
    );
    assert.equal((after as ControlHandlerError).code, 'UNAVAILABLE');
  });

  it('does not force past a wait the CA asked for with a rate limit', async () => {
    const r = fakeReconciler();
    r.status.set(
      'a.example.com',
      cert({
        name: 'a.example.com',
        ready: false,
        phase: 'staging',
        lastError: { code: 'ACME_RATE_LIMITED', message: 'too many orders', at: at(-60) },
        nextRetry: at(3600),
      }),
    );
    const [res] = await handlers(r).renew({ name: 'a.example.com' });
    assert.deepEqual(r.calls, []);
    assert.equal(res?.ok, false);
    assert.equal(res?.error?.code, 'ACME_RATE_LIMITED');
    assert.match(
      res?.error?.message ?? '',
      /not forced.*2026-06-01T13:00:00\.000Z.*too many orders/,
    );
  });

  it('does force past an ordinary failure backoff', async () => {
    const r = fakeReconciler();
    r.status.set(
      'a.example.com',
      cert({
        name: 'a.example.com',
        ready: false,
        lastError: { code: 'SELF_CHECK_FAILED', message: 'nginx 404', at: at(-60) },
        nextRetry: at(3600),
      }),
    );
    await handlers(r).renew({ name: 'a.example.com' });
    assert.deepEqual(
      r.calls.map((c) => c.name),
      ['a.example.com'],
    );
  });

  it('refuses a second renew of one certificate within the cooldown, with the time left', async () => {
    const r = fakeReconciler();
    const clock = new FixedClock(NOW);
    const h = handlers(r, { clock });
    const [first] = await h.renew({ name: 'a.example.com' });
    assert.equal(first?.ok, true);
    clock.advance(4 * 60_000);
    const [second] = await h.renew({ name: 'a.example.com' });
    assert.equal(r.calls.length, 1, 'the second renew did not force anything');
    assert.equal(second?.ok, false);
    assert.equal(second?.error?.code, 'RENEW_COOLDOWN');
    assert.match(second?.error?.message ?? '', /try again in 6 minutes/);
    // Another certificate is not held up by this one's cooldown.
    await h.renew({ name: 'b.example.com' });
    assert.equal(r.calls.length, 2);
    clock.advance(6 * 60_000);
    const [third] = await h.renew({ name: 'a.example.com' });
    assert.equal(third?.ok, true, 'accepted again once the cooldown is over');
    assert.equal(r.calls.length, 3);
  });

  it('runs one forced renewal per certificate at a time, even with no cooldown', async () => {
    const r = fakeReconciler();
    const h = handlers(r, { cooldownSeconds: 0 });
    const [a, b] = await Promise.all([
      h.renew({ name: 'b.example.com' }),
      h.renew({ name: 'b.example.com' }),
    ]);
    assert.equal(r.calls.length, 1);
    assert.deepEqual([a?.[0]?.error?.code, b?.[0]?.error?.code], [undefined, 'RENEW_COOLDOWN']);
    assert.match(b?.[0]?.error?.message ?? '', /is running now/);
  });

  it('applies the cooldown to each certificate of renew --all', async () => {
    const r = fakeReconciler();
    const h = handlers(r);
    await h.renew({ name: 'a.example.com' });
    const results = await h.renew({ all: true });
    assert.deepEqual(
      results.map((x) => [x.name, x.error?.code]),
      [
        ['b.example.com', undefined],
        ['a.example.com', 'RENEW_COOLDOWN'],
      ],
    );
  });

  it('reports a failed attempt with its error, and redacts a private key in it', () => {
    const st = cert({
      name: 'a.example.com',
      ready: false,
      phase: 'self-signed',
      serial: undefined,
      lastError: {
        code: 'UNKNOWN',
        message: 'oops -----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----',
        at: at(0),
      },
    });
    assert.deepEqual(toRenewResult(st), {
      name: 'a.example.com',
      ok: false,
      phase: 'self-signed',
      error: { code: 'UNKNOWN', message: 'oops [redacted private key]' },
    });
  });
});

describe('control: terminal formatting', () => {
  // eslint-disable-next-line no-control-regex
  const ANSI = /\x1b\[[0-9;]*m/g;

  /** Start index of each header word: every row must have a cell starting there. */
  function assertAligned(table: string[]) {
    const header = table[0] ?? '';
    const starts = [...header.matchAll(/(?:^|\s{2})(\S)/g)].map(
      (m) => (m.index ?? 0) + m[0].length - 1,
    );
    assert.ok(starts.length >= 4, `header has columns: ${header}`);
    for (const row of table.slice(1)) {
      for (const s of starts.slice(1)) {
        assert.equal(
          row.slice(s - 2, s),
          '  ',
          `two spaces before column ${s} in ${JSON.stringify(row)}`,
        );
        assert.notEqual(row[s], ' ', `a cell starts at ${s} in ${JSON.stringify(row)}`);
      }
    }
  }

  it('renders the exact table for a typical snapshot', () => {
    const s = snapshot([
      cert({ name: 'www.example.com' }),
      cert({
        name: 'api.example.com',
        phase: 'staging',
        ready: false,
        lastError: { code: 'ACME_RATE_LIMITED', message: 'too many certificates', at: at(-600) },
        nextRetry: at(3 * 3600),
      }),
      cert({ name: 'soon.example.com', notAfter: at(3 * DAY + 60), renewAt: at(-DAY) }),
      cert({
        name: 'new.example.com',
        phase: 'self-signed',
        ready: false,
        notAfter: undefined,
        renewAt: undefined,
        serial: undefined,
      }),
    ]);
    assert.equal(
      formatStatusTable(s, NOW, false),
      [
        'target production, platform static, last pass 2026-06-01 11:59 UTC (1 minute ago): ok',
        '',
        'NAME              PHASE        READY  EXPIRES                                RENEWS                   LAST ERROR',
        'api.example.com   staging      no     2026-07-31 (in 60 days)                retry in 3 hours         ACME_RATE_LIMITED: too many certificates',
        'new.example.com   self-signed  no     -                                      -                        -',
        'soon.example.com  production   yes    2026-06-04 (in 3 days, expiring soon)  2026-05-31 (overdue)     -',
        'www.example.com   production   yes    2026-07-31 (in 60 days)                2026-07-01 (in 30 days)  -',
      ].join('\n'),
    );
  });

  it('aligns columns whatever the lengths', () => {
    const s = snapshot([
      cert({ name: 'a.io' }),
      cert({ name: 'a-rather-long-certificate-name.example.com', phase: 'staging' }),
      cert({ name: 'b.io', notAfter: at(-2 * DAY), ready: false }),
    ]);
    const lines = formatStatusTable(s, NOW, false).split('\n');
    assertAligned(lines.slice(2));
    assert.match(formatStatusTable(s, NOW, false), /expired 2 days ago/);
  });

  it('colours only on request, and the colours do not change the layout', () => {
    const plain = formatStatusTable(SNAPSHOT, NOW, false);
    const coloured = formatStatusTable(SNAPSHOT, NOW, true);
    assert.doesNotMatch(plain, ANSI);
    assert.match(coloured, ANSI);
    assert.equal(coloured.replace(ANSI, ''), plain);
  });

  it('cuts a long error message and shows its code', () => {
    const s = snapshot([
      cert({
        name: 'a.example.com',
        ready: false,
        lastError: { code: 'ACME_VALIDATION_FAILED', message: 'x'.repeat(500), at: at(-60) },
      }),
    ]);
    const row = formatStatusTable(s, NOW, false).split('\n')[3] ?? '';
    assert.match(row, /ACME_VALIDATION_FAILED: x+…$/);
    assert.ok(row.length < 200, row);
  });

  it('lists the skipped hostnames under the table', () => {
    const s = snapshot([cert({ name: 'a.example.com' })], {
      problems: [
        {
          source: 'env:DOMAINS',
          value: '*.example.com',
          code: 'HOSTNAME_INVALID',
          message: 'wildcards need DNS-01',
        },
      ],
    });
    const out = formatStatusTable(s, NOW, false).split('\n');
    assert.deepEqual(out.slice(-3), [
      '',
      'skipped (1):',
      '  "*.example.com" from env:DOMAINS: HOSTNAME_INVALID: wildcards need DNS-01',
    ]);
  });

  it('says when there are no certificates and no pass yet', () => {
    const out = formatStatusTable(snapshot([], { lastPass: null }), NOW, false);
    assert.match(out, /no pass has finished yet/);
    assert.match(out, /no certificates/);
  });

  const hostile = [
    '\x1b[2J\x1b[H',
    '\x1b]0;owned\x07',
    'line\r\nFAKE ok',
    '\u202eevil',
    '\x9b31m',
    'zero\u200bwidth',
  ];
  it('neutralizes control characters and ANSI escapes from names, errors and skipped values', () => {
    const s = snapshot(
      hostile.map((h, i) =>
        cert({
          name: `n${i}${h}`,
          ready: false,
          lastError: { code: `C${h}`, message: `m${h}`, at: at(-60) },
        }),
      ),
      {
        platform: `p\x1b[31m`,
        problems: hostile.map((h) => ({ source: `s${h}`, value: `v${h}`, code: 'X', message: h })),
        lastPass: {
          startedAt: at(-62),
          finishedAt: at(-60),
          ok: false,
          discoveryError: `d\x1b[1A`,
        },
      },
    );
    for (const out of [
      formatStatusTable(s, NOW, false),
      formatStatusTable(s, NOW, true).replace(ANSI, ''),
      formatRenewResults(
        hostile.map((h) => ({
          name: `n${h}`,
          ok: false,
          phase: `p${h}`,
          error: { code: h, message: h },
        })),
      ),
    ]) {
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(out.replace(/\n/g, ''), /[\u0000-\u001f\u007f-\u009f\u200b\u202e]/);
      assert.match(out, /\\x1b\[2J/);
    }
    // One line per certificate: an embedded newline cannot forge a row.
    const table = formatStatusTable(s, NOW, false).split('\n');
    assert.equal(table.filter((l) => l.startsWith('n')).length, hostile.length);
    assert.equal(termSafe('a\u202eb'), 'a\\u{202e}b');
  });

  it('formats renewal results, aligned, with serial or error', () => {
    const results: RenewResult[] = [
      { name: 'www.example.com', ok: true, phase: 'production', serial: '0A1B' },
      {
        name: 'api.example.com',
        ok: false,
        phase: 'staging',
        error: { code: 'ACME_RATE_LIMITED', message: 'too many certificates' },
      },
    ];
    assert.equal(
      formatRenewResults(results),
      [
        'RESULT  NAME             PHASE       DETAIL',
        'ok      www.example.com  production  serial 0A1B',
        'FAIL    api.example.com  staging     ACME_RATE_LIMITED: too many certificates',
      ].join('\n'),
    );
    assert.equal(formatRenewResults([]), 'no certificates to renew');
  });

  const exitCases: { name: string; got: () => number; want: number }[] = [
    {
      name: 'status is 0 when every certificate is ready',
      got: () => commandExitCode('status', snapshot([cert({ name: 'a' })])),
      want: 0,
    },
    {
      name: 'status is 1 when one is not ready',
      got: () => commandExitCode('status', SNAPSHOT),
      want: 1,
    },
    {
      name: 'status is 1 with no certificates',
      got: () => commandExitCode('status', snapshot([])),
      want: 1,
    },
    {
      name: 'renew is 0 when every result is ok',
      got: () => commandExitCode('renew', [{ name: 'a', ok: true, phase: 'production' }]),
      want: 0,
    },
    {
      name: 'renew is 1 when one failed',
      got: () =>
        commandExitCode('renew', [
          { name: 'a', ok: true, phase: 'production' },
          { name: 'b', ok: false, phase: 'staging' },
        ]),
      want: 1,
    },
    { name: 'renew is 1 with nothing renewed', got: () => commandExitCode('renew', []), want: 1 },
  ];
  for (const c of exitCases) {
    it(`exit code of ${c.name}`, () => assert.equal(c.got(), c.want));
  }
});
