// The Docker Engine client and the event watch against what a real engine
// rarely does on demand: 500s, bad JSON, a non-array list, no answer, an
// event stream that is cut. A small HTTP server on a UNIX socket in a temp
// dir plays the engine (nothing on the network).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorCode } from '../../src/domain/errors.js';
import { DockerPlatform } from '../../src/platform/docker/docker-platform.js';
import { DockerEngineClient } from '../../src/platform/docker/engine-client.js';
import { DOMAINS_LABEL } from '../../src/platform/labels.js';
import { silentLogger } from '../../src/util/log.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const ID = 'a'.repeat(64);
const LIST = JSON.stringify([
  { Id: ID, Names: ['/web'], State: 'running', Labels: { [DOMAINS_LABEL]: 'web.faults.test' } },
]);

describe('Docker Engine client faults (UNIX-socket server)', function () {
  this.timeout(20_000);
  let dir: string;
  let socketPath: string;
  let server: http.Server;
  let handler: Handler;
  let requests: string[];

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'dkf-'));
    socketPath = path.join(dir, 'docker.sock');
    requests = [];
    server = http.createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      handler(req, res);
    });
    await new Promise<void>((r) => server.listen(socketPath, r));
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  const client = (attempts = 3, timeoutMs = 1000) =>
    new DockerEngineClient({ socketPath, timeoutMs, attempts, backoffMs: 10, log: silentLogger });

  it('retries a 500 and succeeds on the next attempt', async () => {
    let n = 0;
    handler = (_req, res) => {
      if (n++ === 0) res.writeHead(500).end('{"message":"boom"}');
      else res.writeHead(200, { 'content-type': 'application/json' }).end(LIST);
    };
    const list = await client().listContainers();
    assert.equal(list.length, 1);
    assert.equal(requests.length, 2);
  });

  it('gives up after the bounded attempts with PLATFORM_UNAVAILABLE and the engine message', async () => {
    handler = (_req, res) => res.writeHead(500).end('{"message":"boom"}');
    await assert.rejects(client(3).listContainers(), (err) => {
      assert.equal(errorCode(err), 'PLATFORM_UNAVAILABLE');
      assert.match(String(err), /HTTP 500 boom/);
      return true;
    });
    assert.equal(requests.length, 3);
  });

  it('does not retry a 400, and says PLATFORM_REJECTED', async () => {
    handler = (_req, res) => res.writeHead(400).end('{"message":"bad filter"}');
    await assert.rejects(
      client(3).listContainers(),
      (err) => errorCode(err) === 'PLATFORM_REJECTED',
    );
    assert.equal(requests.length, 1);
  });

  it('refuses bad JSON and a list that is not an array as PLATFORM_BAD_RESPONSE', async () => {
    handler = (_req, res) => res.writeHead(200).end('{"not json');
    await assert.rejects(
      client(1).listContainers(),
      (err) => errorCode(err) === 'PLATFORM_BAD_RESPONSE',
    );
    handler = (_req, res) => res.writeHead(200).end('{"Id":"x"}');
    await assert.rejects(
      client(1).listContainers(),
      (err) => errorCode(err) === 'PLATFORM_BAD_RESPONSE',
    );
  });

  it('drops list items without a proper id or with non-string labels, keeping the rest', async () => {
    handler = (_req, res) =>
      res
        .writeHead(200)
        .end(
          JSON.stringify([
            null,
            { Id: '../../etc', State: 'running', Labels: { [DOMAINS_LABEL]: 'evil.faults.test' } },
            { Id: 'b'.repeat(64), State: 'running', Labels: { [DOMAINS_LABEL]: 7 } },
            JSON.parse(LIST)[0],
          ]),
        );
    const p = new DockerPlatform(client(1), {
      domains: async () => '',
      log: silentLogger,
      stoppedGraceMs: 0,
    });
    const d = await p.discover();
    assert.deepEqual(
      d.specs.map((s) => s.name),
      ['web.faults.test'],
    );
  });

  it('inspects a stopped container only if it declares hostnames', async () => {
    handler = (req, res) => {
      if (req.url?.startsWith('/containers/json')) {
        return void res.writeHead(200).end(
          JSON.stringify([
            { Id: 'd'.repeat(64), Names: ['/job'], State: 'exited', Labels: {} },
            {
              Id: 'e'.repeat(64),
              Names: ['/old'],
              State: 'exited',
              Labels: { [DOMAINS_LABEL]: 'old.faults.test' },
            },
          ]),
        );
      }
      res
        .writeHead(200)
        .end(
          JSON.stringify({ Id: 'e'.repeat(64), State: { FinishedAt: new Date().toISOString() } }),
        );
    };
    const p = new DockerPlatform(client(1), {
      domains: async () => '',
      log: silentLogger,
      stoppedGraceMs: 60_000,
    });
    assert.deepEqual(
      (await p.discover()).specs.map((s) => s.name),
      ['old.faults.test'],
    );
    assert.deepEqual(
      requests.filter((r) => /^GET \/containers\/[0-9a-f]+\/json/.test(r)),
      [`GET /containers/${'e'.repeat(64)}/json`],
    );
  });

  it('times out an engine that never answers, within the bound', async () => {
    handler = () => {
      /* never answers */
    };
    const t0 = Date.now();
    await assert.rejects(client(2, 300).listContainers(), (err) => {
      assert.equal(errorCode(err), 'PLATFORM_UNAVAILABLE');
      assert.match(String(err), /no answer within 300 ms/);
      return true;
    });
    assert.ok(Date.now() - t0 < 3000, `${Date.now() - t0} ms`);
  });

  it('refuses a container reference that is not an id or a name before it reaches a URL', async () => {
    handler = (_req, res) => res.writeHead(204).end();
    await assert.rejects(
      client().signal('../../containers/x', 'HUP'),
      (err) => errorCode(err) === 'PLATFORM_REJECTED',
    );
    assert.deepEqual(requests, []);
  });

  it('reconnects when the event stream is cut, and asks for a resync once it is back', async () => {
    let streams = 0;
    const open: http.ServerResponse[] = [];
    handler = (req, res) => {
      if (!req.url?.startsWith('/events')) return void res.writeHead(200).end(LIST);
      streams++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('');
      open.push(res);
    };
    const p = new DockerPlatform(client(), {
      domains: async () => '',
      log: silentLogger,
      stoppedGraceMs: 0,
      reconnectMinMs: 20,
      eventDebounceMs: 10,
    });
    const changes: string[] = [];
    const watch = p.watch((why) => changes.push(why));
    try {
      const until = async (f: () => boolean) => {
        const deadline = Date.now() + 5000;
        while (!f()) {
          if (Date.now() > deadline) throw new Error(`timed out; changes: ${changes.join(' | ')}`);
          await sleep(10);
        }
      };
      await until(() => streams === 1);
      // An unrelated container's start (no hostname label) is no change.
      open[0]?.write(
        `${JSON.stringify({ Type: 'container', Action: 'start', Actor: { ID: 'c'.repeat(64), Attributes: { name: 'job' } } })}\n`,
      );
      // An event, in two chunks, then junk that is ignored.
      const ev = JSON.stringify({
        Type: 'container',
        Action: 'start',
        Actor: { ID: ID, Attributes: { name: 'web', [DOMAINS_LABEL]: 'web.faults.test' } },
      });
      open[0]?.write(ev.slice(0, 10));
      open[0]?.write(`${ev.slice(10)}\nnot json\n`);
      await until(() => changes.length === 1);
      assert.equal(changes[0], 'docker: container web start');
      // The engine cuts the stream.
      open[0]?.socket?.destroy();
      await until(() => streams === 2 && changes.length === 2);
      assert.equal(changes[1], 'docker: event stream reconnected');
      assert.match(requests.find((r) => r.startsWith('GET /events')) ?? '', /filters=/);
    } finally {
      await watch.close();
    }
  });

  it('reconnects again and again without piling up listeners on its signal', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(`${w.name}: ${w.message}`);
    };
    process.on('warning', onWarning);
    let streams = 0;
    handler = (req, res) => {
      if (!req.url?.startsWith('/events')) return void res.writeHead(200).end('[]');
      streams++;
      // Cut at once: every stream drops right after it opened.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end();
    };
    const p = new DockerPlatform(client(), {
      domains: async () => '',
      log: silentLogger,
      stoppedGraceMs: 0,
      reconnectMinMs: 1,
      reconnectMaxMs: 1,
    });
    const watch = p.watch(() => undefined);
    try {
      const deadline = Date.now() + 5000;
      while (streams < 30 && Date.now() < deadline) await sleep(10);
      assert.ok(streams >= 30, `${streams} reconnections`);
    } finally {
      await watch.close();
      await sleep(10); // warnings are emitted on the next tick
      process.off('warning', onWarning);
    }
    assert.deepEqual(
      warnings.filter((w) => /MaxListeners|memory leak/i.test(w)),
      [],
    );
  });
});
