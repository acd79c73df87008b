import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { LiveDir } from '../../src/deploy/live-dir.js';
import type { CertBundle } from '../../src/domain/types.js';
import {
  HookRunner,
  certificateEvent,
  redactUrl,
  type CertificateEvent,
  type HookOutcome,
  type HookRunnerOptions,
} from '../../src/hooks/hooks.js';
import { SETTINGS } from '../../src/config/schema.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import { createLogger, silentLogger } from '../../src/util/log.js';
import { serialOf } from '../../src/util/x509.js';

const NAME = 'shop';
const DOMAINS = ['shop.example.com', 'cdn.example.com'];

/** Everything written to the log, as text. */
function capturedLogger() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (b: Buffer) => (text += b.toString('utf8')));
  return { log: createLogger({ stream, level: 'debug' }), text: () => text };
}

function onlyOutcome(outcomes: HookOutcome[], hook: HookOutcome['hook']): HookOutcome {
  const o = outcomes.filter((x) => x.hook === hook);
  assert.equal(o.length, 1, `one ${hook} outcome in ${JSON.stringify(outcomes)}`);
  return o[0]!;
}

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A webhook receiver on 127.0.0.1 answering with `statuses` in turn (then the last one); 0 = never answer. */
async function receiver(statuses: number[]) {
  const received: Received[] = [];
  const hanging: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (b: Buffer) => (body += b.toString('utf8')));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      const status = statuses[Math.min(received.length, statuses.length) - 1] ?? 200;
      if (status === 0) hanging.push(res);
      else res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    received,
    close: async () => {
      hanging.forEach((r) => r.destroy());
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('HookRunner', () => {
  let dir: string;
  let bundle: CertBundle;
  let event: CertificateEvent;

  before(async () => {
    bundle = await new SelfSignedIssuer(new FixedClock(new Date())).issue(
      { name: NAME, domains: DOMAINS, source: 'test' },
      'ecdsa-p256',
    );
    assert.match(bundle.privkey, /PRIVATE KEY/, 'the fixture has a real key to leak');
  });

  beforeEach(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'hooks-'));
    const live = new LiveDir(join(dir, 'state'));
    await live.write(NAME, bundle);
    event = certificateEvent(
      {
        name: NAME,
        phase: 'staging',
        domains: DOMAINS,
        directoryUrl: 'https://acme.test/dir',
        keyType: 'ecdsa-p256',
        notBefore: '2025-01-01T00:00:00.000Z',
        notAfter: '2025-04-01T00:00:00.000Z',
        serial: serialOf(bundle.cert),
        chainVerified: true,
        issuedAt: '2025-01-01T00:00:00.000Z',
      },
      live.path(NAME),
    );
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  function runner(opts: Omit<HookRunnerOptions, 'log'> & { log?: HookRunnerOptions['log'] }) {
    return new HookRunner({ log: silentLogger, backoffMs: 10, ...opts });
  }

  describe('command', () => {
    it('runs the command with the certificate facts and certbot-compatible variables in its environment', async () => {
      const envFile = join(dir, 'env.txt');
      const combinedDir = join(dir, 'haproxy');
      const outcomes = await runner({
        command: `env > '${envFile}'`,
        combinedPemDir: combinedDir,
      }).run(event, bundle);
      assert.equal(onlyOutcome(outcomes, 'command').ok, true, JSON.stringify(outcomes));

      const env = Object.fromEntries(
        (await fs.readFile(envFile, 'utf8'))
          .split('\n')
          .filter((l) => l.includes('='))
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      ) as Record<string, string>;
      const liveDir = join(dir, 'state', 'live', NAME);
      assert.equal(env.ACME_SIDECAR_CERT_NAME, NAME);
      assert.equal(env.ACME_SIDECAR_DOMAINS, 'shop.example.com,cdn.example.com');
      assert.equal(env.ACME_SIDECAR_PHASE, 'staging');
      assert.equal(env.ACME_SIDECAR_SERIAL, event.serial);
      assert.equal(env.ACME_SIDECAR_CERT_PATH, join(liveDir, 'cert.pem'));
      assert.equal(env.ACME_SIDECAR_CHAIN_PATH, join(liveDir, 'chain.pem'));
      assert.equal(env.ACME_SIDECAR_FULLCHAIN_PATH, join(liveDir, 'fullchain.pem'));
      assert.equal(env.ACME_SIDECAR_KEY_PATH, join(liveDir, 'privkey.pem'));
      assert.equal(env.ACME_SIDECAR_COMBINED_PATH, join(combinedDir, `${NAME}.pem`));
      assert.equal(env.RENEWED_LINEAGE, liveDir);
      assert.equal(env.RENEWED_DOMAINS, 'shop.example.com cdn.example.com');
      // The paths are real: a hook can read the certificate it is told about.
      assert.equal(await fs.readFile(env.ACME_SIDECAR_CERT_PATH, 'utf8'), bundle.cert);
      assert.ok(!(await fs.readFile(envFile, 'utf8')).includes('PRIVATE KEY'));
    });

    it('leaves ACME_SIDECAR_COMBINED_PATH unset without a combined PEM, and keeps the sidecar secrets out', async () => {
      const envFile = join(dir, 'env.txt');
      // Every setting the schema marks secret, each set to a value we can grep for.
      const secrets = SETTINGS.filter((s) => s.secret === true).map((s) => s.env);
      assert.ok(secrets.includes('HOOK_WEBHOOK_URL'), 'the webhook URL is marked secret');
      for (const name of secrets) process.env[name] = `secret-of-${name}-for-test`;
      try {
        await runner({ command: `env > '${envFile}'` }).run(event, bundle);
      } finally {
        for (const name of secrets) delete process.env[name];
      }
      const text = await fs.readFile(envFile, 'utf8');
      assert.match(text, /^ACME_SIDECAR_CERT_NAME=shop$/m);
      assert.doesNotMatch(text, /ACME_SIDECAR_COMBINED_PATH/);
      for (const name of secrets) {
        assert.doesNotMatch(
          text,
          new RegExp(`secret-of-${name}-for-test`),
          `${name} reached the hook`,
        );
      }
    });

    it('reports a command that exits 3 as failed, with its output in the log, and does not throw', async () => {
      const { log, text } = capturedLogger();
      const outcomes = await runner({
        command: 'echo about to fail; echo oops >&2; exit 3',
        log,
      }).run(event, bundle);
      const o = onlyOutcome(outcomes, 'command');
      assert.equal(o.ok, false);
      assert.equal(o.attempts, 3, 'retried, like the webhook');
      assert.match(o.error ?? '', /exited with code 3/);
      const line = text()
        .split('\n')
        .find((l) => l.includes('hook failed'));
      assert.ok(line, text());
      const entry = JSON.parse(line) as Record<string, unknown>;
      assert.equal(entry.level, 'warn');
      assert.equal(entry.cert, NAME);
      assert.equal(entry.hook, 'command');
      assert.equal(entry.stdout, 'about to fail\n');
      assert.equal(entry.stderr, 'oops\n');
    });

    it('retries a failing command, and succeeds when a later attempt does', async () => {
      const dir = await fs.mkdtemp(join(tmpdir(), 'hook-retry-'));
      try {
        const marker = join(dir, 'tried');
        // Fails the first time, succeeds the second.
        const outcomes = await runner({
          command: `if [ -e "${marker}" ]; then exit 0; else touch "${marker}"; exit 1; fi`,
        }).run(event, bundle);
        const o = onlyOutcome(outcomes, 'command');
        assert.equal(o.ok, true);
        assert.equal(o.attempts, 2);
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
    });

    it('kills a hanging command and everything it started at the timeout', async () => {
      const pidFile = join(dir, 'bg.pid');
      const started = Date.now();
      const outcomes = await runner({
        attempts: 1,
        // A background child in the same process group, then a hang.
        command: `sleep 60 & echo $! > '${pidFile}'; sleep 60`,
        timeoutMs: 300,
      }).run(event, bundle);
      const elapsed = Date.now() - started;
      const o = onlyOutcome(outcomes, 'command');
      assert.equal(o.ok, false);
      assert.match(o.error ?? '', /timed out after 300 ms/);
      assert.ok(elapsed < 5000, `returned after ${elapsed} ms`);
      const bgPid = Number((await fs.readFile(pidFile, 'utf8')).trim());
      assert.ok(bgPid > 0);
      await waitFor(() => !alive(bgPid), 3000, `background sleep ${bgPid} still running`);
    });

    it('keeps a private key the command prints out of the log, even when its output is truncated', async () => {
      const { log, text } = capturedLogger();
      const keyPath = event.paths.privkey;
      // 4000 bytes of noise push the key across the 4 kB cut.
      const outcomes = await runner({
        command: `head -c 4000 /dev/zero | tr '\\0' x; cat '${keyPath}'; cat '${keyPath}' >&2; exit 1`,
        log,
      }).run(event, bundle);
      assert.equal(onlyOutcome(outcomes, 'command').ok, false);
      assert.match(text(), /redacted private key/);
      assert.ok(!text().includes('PRIVATE KEY'), text());
      const keyBody = bundle.privkey.split('\n')[1] ?? '';
      assert.ok(keyBody.length > 20 && !text().includes(keyBody.slice(0, 20)));
    });
  });

  describe('webhook', () => {
    it('POSTs the event as JSON, without any key material', async () => {
      const rx = await receiver([204]);
      try {
        const outcomes = await runner({ webhookUrl: rx.url }).run(event, bundle);
        const o = onlyOutcome(outcomes, 'webhook');
        assert.equal(o.ok, true, o.error);
        assert.equal(o.attempts, 1);
        assert.equal(rx.received.length, 1);
        const { headers, body } = rx.received[0]!;
        assert.equal(headers['content-type'], 'application/json');
        assert.equal(headers['user-agent'], 'acme-sidecar');
        const sent = JSON.parse(body) as CertificateEvent;
        assert.equal(sent.type, 'certificate.deployed');
        assert.equal(sent.name, NAME);
        assert.deepEqual(sent.domains, DOMAINS);
        assert.equal(sent.phase, 'staging');
        assert.equal(sent.serial, event.serial);
        assert.equal(sent.notAfter, '2025-04-01T00:00:00.000Z');
        assert.equal(sent.paths.fullchain, event.paths.fullchain);
        assert.equal(sent.paths.privkey, event.paths.privkey);
        assert.ok(!body.includes('PRIVATE KEY'), body);
        assert.ok(!body.includes(bundle.privkey.split('\n')[1]!), body);
      } finally {
        await rx.close();
      }
    });

    it('sends only the event fields even if the caller passes an object carrying the bundle', async () => {
      const rx = await receiver([200]);
      try {
        const sloppy = { ...event, bundle } as CertificateEvent;
        await runner({ webhookUrl: rx.url }).run(sloppy, bundle);
        assert.ok(!rx.received[0]!.body.includes('PRIVATE KEY'));
        assert.ok(!('bundle' in (JSON.parse(rx.received[0]!.body) as object)));
      } finally {
        await rx.close();
      }
    });

    it('ignores HTTP_PROXY by default (HOOK_WEBHOOK_PROXY unset)', async () => {
      const rx = await receiver([200]);
      const proxy = await receiver([200]);
      const saved = { ...process.env };
      for (const k of ['NO_PROXY', 'no_proxy', 'HTTPS_PROXY', 'https_proxy', 'http_proxy']) {
        delete process.env[k];
      }
      process.env.HTTP_PROXY = `http://127.0.0.1:${proxy.port}`;
      try {
        const direct = await runner({ webhookUrl: rx.url }).run(event, bundle);
        assert.equal(onlyOutcome(direct, 'webhook').ok, true);
        assert.equal(rx.received.length, 1, 'the receiver got the event directly');
        assert.equal(proxy.received.length, 0, 'the proxy saw nothing');

        // The opt-in (HOOK_WEBHOOK_PROXY=true) is shown end to end in test/e2e/hooks.test.ts:
        // nock, loaded in this process by other unit tests, cannot carry a proxied request.
      } finally {
        for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
        Object.assign(process.env, saved);
        await rx.close();
        await proxy.close();
      }
    });

    it('retries a webhook that answers 500 twice and succeeds on attempt 3', async () => {
      const rx = await receiver([500, 500, 200]);
      try {
        const o = onlyOutcome(await runner({ webhookUrl: rx.url }).run(event, bundle), 'webhook');
        assert.equal(o.ok, true, o.error);
        assert.equal(o.attempts, 3);
        assert.equal(rx.received.length, 3);
      } finally {
        await rx.close();
      }
    });

    it('gives up on a webhook that never answers after all attempts, without throwing', async () => {
      const rx = await receiver([0]);
      try {
        const o = onlyOutcome(
          await runner({ webhookUrl: rx.url, timeoutMs: 200, attempts: 3 }).run(event, bundle),
          'webhook',
        );
        assert.equal(o.ok, false);
        assert.equal(o.attempts, 3);
        assert.match(o.error ?? '', /timeout/i);
        assert.equal(rx.received.length, 3);
      } finally {
        await rx.close();
      }
    });

    it('does not retry a 4xx refusal', async () => {
      const rx = await receiver([403]);
      try {
        const o = onlyOutcome(await runner({ webhookUrl: rx.url }).run(event, bundle), 'webhook');
        assert.equal(o.ok, false);
        assert.equal(o.attempts, 1);
        assert.match(o.error ?? '', /HTTP 403/);
      } finally {
        await rx.close();
      }
    });

    it('never logs the credentials or query of the webhook URL', async () => {
      const rx = await receiver([500]);
      const { log, text } = capturedLogger();
      try {
        const url = `http://user:pa55word@127.0.0.1:${rx.port}/hook?token=s3cret-token`;
        const o = onlyOutcome(
          await runner({ webhookUrl: url, attempts: 2, log }).run(event, bundle),
          'webhook',
        );
        assert.equal(o.ok, false);
        assert.ok(rx.received.length === 2);
        assert.match(text(), /hook failed/);
        assert.ok(!text().includes('pa55word'), text());
        assert.ok(!text().includes('s3cret-token'), text());
        assert.ok(!(o.error ?? '').includes('s3cret-token'));
      } finally {
        await rx.close();
      }
      assert.equal(redactUrl('https://u:p@h.test/x?k=v#f'), 'https://h.test/x');
    });
  });

  describe('combined PEM', () => {
    it('writes fullchain followed by the key, mode 0600', async () => {
      const combinedDir = join(dir, 'haproxy');
      const outcomes = await runner({ combinedPemDir: combinedDir }).run(event, bundle);
      const o = onlyOutcome(outcomes, 'combined-pem');
      assert.equal(o.ok, true, o.error);
      const path = join(combinedDir, `${NAME}.pem`);
      assert.equal(await fs.readFile(path, 'utf8'), bundle.fullchain + bundle.privkey);
      assert.equal((await fs.stat(path)).mode & 0o777, 0o600);
      // Only the file itself: no temp files left behind.
      assert.deepEqual(await fs.readdir(combinedDir), [`${NAME}.pem`]);
    });

    it('refuses a hostile certificate name and writes nothing outside its directory', async () => {
      const combinedDir = join(dir, 'haproxy');
      await fs.mkdir(combinedDir);
      const hostile = { ...event, name: '../x' };
      const { log, text } = capturedLogger();
      const envFile = join(dir, 'env.txt');
      const outcomes = await runner({
        combinedPemDir: combinedDir,
        command: `env > '${envFile}'`,
        log,
      }).run(hostile, bundle);
      const o = onlyOutcome(outcomes, 'combined-pem');
      assert.equal(o.ok, false);
      assert.match(o.error ?? '', /refusing certificate name/);
      assert.deepEqual(await fs.readdir(combinedDir), []);
      assert.deepEqual((await fs.readdir(dir)).sort(), ['env.txt', 'haproxy', 'state']);
      // The other hooks still ran, without a combined path.
      assert.equal(onlyOutcome(outcomes, 'command').ok, true);
      assert.doesNotMatch(await fs.readFile(envFile, 'utf8'), /ACME_SIDECAR_COMBINED_PATH/);
      assert.match(text(), /hook failed/);
    });
  });

  it('runs every hook, logs each outcome with the certificate name, and never logs a key', async () => {
    const rx = await receiver([200]);
    const { log, text } = capturedLogger();
    try {
      const outcomes = await runner({
        command: 'true',
        webhookUrl: rx.url,
        combinedPemDir: join(dir, 'haproxy'),
        log,
      }).run(event, bundle);
      assert.deepEqual(outcomes.map((o) => [o.hook, o.ok]).sort(), [
        ['combined-pem', true],
        ['command', true],
        ['webhook', true],
      ]);
      const lines = text()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.message === 'hook succeeded');
      assert.equal(lines.length, 3);
      for (const l of lines) {
        assert.equal(l.level, 'info');
        assert.equal(l.cert, NAME);
        assert.equal(typeof l.durationMs, 'number');
      }
      assert.ok(!text().includes('PRIVATE KEY'));
    } finally {
      await rx.close();
    }
  });

  it('does nothing, and says so through `enabled`, when no hook is configured', async () => {
    const r = runner({});
    assert.equal(r.enabled, false);
    assert.deepEqual(await r.run(event, bundle), []);
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(what);
    await new Promise((r) => setTimeout(r, 25));
  }
}
