// The io.acme-sidecar.profile label on Docker (src/platform/labels.ts), read
// by the real DockerPlatform from a small engine on a UNIX socket: it sets the
// profile of what the container's labels and its hostname variables ask for,
// and a bad value skips only that container.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { DockerPlatform } from '../../src/platform/docker/docker-platform.js';
import { DockerEngineClient } from '../../src/platform/docker/engine-client.js';
import { DOMAINS_LABEL, PROFILE_LABEL } from '../../src/platform/labels.js';
import { silentLogger } from '../../src/util/log.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);

describe('Docker: the profile label', function () {
  this.timeout(20_000);
  let dir: string;
  let server: http.Server;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'dkp-'));
    server = http.createServer((req, res) => {
      if (req.url?.startsWith('/containers/json')) {
        return void res.writeHead(200).end(
          JSON.stringify([
            {
              Id: A,
              Names: ['/web'],
              State: 'running',
              Labels: { [DOMAINS_LABEL]: 'web.profile.test', [PROFILE_LABEL]: 'shortlived' },
            },
            {
              Id: B,
              Names: ['/proxied'],
              State: 'running',
              Labels: { [PROFILE_LABEL]: 'tlsserver' },
            },
            {
              Id: C,
              Names: ['/bad'],
              State: 'running',
              Labels: { [DOMAINS_LABEL]: 'bad.profile.test', [PROFILE_LABEL]: 'short/../x' },
            },
          ]),
        );
      }
      const env = req.url?.includes(B) ? ['LETSENCRYPT_HOST=proxied.profile.test'] : [];
      res.writeHead(200).end(JSON.stringify({ State: {}, Config: { Env: env } }));
    });
    await new Promise<void>((r) => server.listen(path.join(dir, 'docker.sock'), r));
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it('applies to labels and hostname variables alike; a bad value skips only its container', async () => {
    const client = new DockerEngineClient({
      socketPath: path.join(dir, 'docker.sock'),
      timeoutMs: 1000,
      attempts: 1,
      backoffMs: 10,
      log: silentLogger,
    });
    const p = new DockerPlatform(client, {
      domains: async () => 'plain.profile.test',
      log: silentLogger,
      stoppedGraceMs: 0,
      envHostnames: ['LETSENCRYPT_HOST'],
    });
    const d = await p.discover();
    assert.deepEqual(d.specs.map((s) => [s.name, s.profile]).sort(), [
      ['plain.profile.test', undefined],
      ['proxied.profile.test', 'tlsserver'],
      ['web.profile.test', 'shortlived'],
    ]);
    assert.deepEqual(
      d.problems.map((p) => [p.code, p.value]),
      [['bad-profile', 'short/../x']],
    );
    assert.match(
      d.problems[0]?.source ?? '',
      /^docker:container\/bad\(c{12}\):io\.acme-sidecar\.profile$/,
    );
  });
});
