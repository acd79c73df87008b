// The Engine API calls docs/platforms.md lists for a socket proxy
// (ENGINE_API_CALLS) are the calls the client really sends: every public
// method is driven against a recording UNIX-socket server.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { DockerEngineClient, ENGINE_API_CALLS } from '../../src/platform/docker/engine-client.js';
import { silentLogger } from '../../src/util/log.js';

const ID = 'a'.repeat(64);

describe('Docker Engine client: the calls it makes are the ones documented', () => {
  let dir: string;
  let server: http.Server;
  const seen = new Set<string>();
  let client: DockerEngineClient;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'dkc-'));
    const socketPath = path.join(dir, 'docker.sock');
    server = http.createServer((req, res) => {
      const p = new URL(req.url ?? '/', 'http://engine').pathname.replaceAll(ID, '{id}');
      seen.add(`${req.method} ${p}`);
      res.writeHead(p === '/containers/{id}/kill' ? 204 : 200, {
        'content-type': 'application/json',
      });
      if (p === '/events') res.end(`${JSON.stringify({ Type: 'container', Action: 'start' })}\n`);
      else if (p === '/containers/json') res.end(JSON.stringify([{ Id: ID }]));
      else if (p === '/containers/{id}/kill') res.end();
      else res.end(JSON.stringify({ Id: ID }));
    });
    await new Promise<void>((r) => server.listen(socketPath, r));
    client = new DockerEngineClient({ socketPath, timeoutMs: 2000, log: silentLogger });
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it('has exactly the public methods driven below (a new one must be added here and to ENGINE_API_CALLS)', () => {
    const methods = Object.getOwnPropertyNames(DockerEngineClient.prototype)
      .filter((m) => m !== 'constructor')
      .filter(
        (m) =>
          typeof Object.getOwnPropertyDescriptor(DockerEngineClient.prototype, m)?.value ===
          'function',
      )
      .sort();
    assert.deepEqual(methods, ['inspect', 'listContainers', 'request', 'signal', 'streamEvents']);
  });

  it('sends only the documented calls, and every documented call is sent', async () => {
    await client.listContainers({ label: ['x'] });
    await client.inspect(ID);
    await client.signal(ID, 'HUP');
    const events: unknown[] = [];
    await client.streamEvents(
      { type: ['container'] },
      (e) => events.push(e),
      new AbortController().signal,
    );
    assert.equal(events.length, 1);
    assert.deepEqual([...seen].sort(), ENGINE_API_CALLS.map((c) => `${c.method} ${c.path}`).sort());
  });
});
