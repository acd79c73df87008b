import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { startDevEnv, writeSelfSignedCert, type DevEnv } from '../../devenv/index.js';
import { checkDeployment, parseEndpoints } from '../../src/deploy/deployment-check.js';
import { errorCode } from '../../src/domain/errors.js';

const NAME = 'dc.demo.test';
const TLS_SERVERS = [{ certName: NAME, serverNames: [NAME] }];

/** Writes a new self-signed certificate into live/<NAME>/ (nginx is not told) and returns its serial. */
async function writeNewCert(env: DevEnv): Promise<string> {
  const { fullchainPath } = await writeSelfSignedCert(env.certDir, NAME, [NAME]);
  return new X509Certificate(await readFile(fullchainPath, 'utf8')).serialNumber;
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

describe('e2e: deployment check against a real nginx', function () {
  this.timeout(120_000);
  let env: DevEnv;
  let https: { host: string; port: number };

  before(async () => {
    env = await startDevEnv();
    https = { host: '127.0.0.1', port: env.ports.https };
  });
  after(async () => {
    await env?.stop();
  });

  const check = (expectedSerial: string, endpoints = [https]) =>
    checkDeployment({ endpoints, servername: NAME, expectedSerial, timeoutMs: 3000 });

  it('tells current, renewed-but-never-reloaded (stale), and reloaded again apart', async () => {
    const serialA = await writeNewCert(env);
    await env.nginx.reload({ tlsServers: TLS_SERVERS });

    assert.deepEqual(await check(serialA), [
      { endpoint: `127.0.0.1:${env.ports.https}`, state: 'current', servedSerial: serialA },
    ]);
    // Serials are numbers: case and leading zeros do not matter.
    assert.equal((await check('000' + serialA.toLowerCase()))[0]?.state, 'current');

    // Renewed: the files change, nginx is not reloaded and keeps serving A.
    const serialB = await writeNewCert(env);
    assert.notEqual(serialB, serialA);
    assert.deepEqual(await check(serialB), [
      { endpoint: `127.0.0.1:${env.ports.https}`, state: 'stale', servedSerial: serialA },
    ]);

    await env.nginx.reload();
    assert.deepEqual(await check(serialB), [
      { endpoint: `127.0.0.1:${env.ports.https}`, state: 'current', servedSerial: serialB },
    ]);
    assert.equal((await check(serialA))[0]?.state, 'stale');
  });

  it('reports a closed port, a non-TLS port and a silent server as unreachable, each on its own', async () => {
    const closed = await closedPort();
    // Accepts TCP and never says a word: only the timeout ends it.
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const silentPort = (silent.address() as net.AddressInfo).port;
    try {
      const serial = new X509Certificate(
        await readFile(path.join(env.certDir, 'live', NAME, 'fullchain.pem'), 'utf8'),
      ).serialNumber;
      const started = Date.now();
      const results = await checkDeployment({
        endpoints: [
          https,
          { host: '127.0.0.1', port: closed },
          { host: '127.0.0.1', port: env.ports.http },
          { host: '127.0.0.1', port: silentPort },
        ],
        servername: NAME,
        expectedSerial: serial,
        timeoutMs: 500,
      });
      assert.ok(Date.now() - started < 5000, 'bounded by the timeout');
      assert.deepEqual(
        results.map((r) => [r.endpoint, r.state]),
        [
          [`127.0.0.1:${env.ports.https}`, 'current'],
          [`127.0.0.1:${closed}`, 'unreachable'],
          [`127.0.0.1:${env.ports.http}`, 'unreachable'],
          [`127.0.0.1:${silentPort}`, 'unreachable'],
        ],
      );
      assert.match(results[1]?.error ?? '', /ECONNREFUSED/);
      assert.ok(results[2]?.error, 'a plain-HTTP port says why');
      assert.match(results[3]?.error ?? '', /no TLS handshake within 500 ms/);
      assert.equal(results[1]?.servedSerial, undefined);
    } finally {
      sockets.forEach((s) => s.destroy());
      await new Promise((r) => silent.close(r));
    }
  });

  it('refuses an expected serial that is not hex', async () => {
    await assert.rejects(check('not-a-serial'), /is not hex/);
  });
});

describe('parseEndpoints', () => {
  const cases: [string, string, { host: string; port: number }[]][] = [
    ['parses one host name', 'nginx:443', [{ host: 'nginx', port: 443 }]],
    [
      'parses a list with spaces, IPv4 and bracketed IPv6',
      ' nginx:443, 10.0.0.5:8443 ,[fd00::5]:443',
      [
        { host: 'nginx', port: 443 },
        { host: '10.0.0.5', port: 8443 },
        { host: 'fd00::5', port: 443 },
      ],
    ],
    ['ignores empty entries', 'a.example:1,,', [{ host: 'a.example', port: 1 }]],
    ['returns nothing for an empty string', '', []],
    ['lowercases host names', 'NGINX.Local:443', [{ host: 'nginx.local', port: 443 }]],
  ];
  for (const [name, input, expected] of cases) {
    it(name, () => assert.deepEqual(parseEndpoints(input), expected));
  }

  const bad: [string, string, RegExp][] = [
    ['refuses a missing port', 'nginx', /port is missing/],
    ['refuses port 0', 'nginx:0', /not 1-65535/],
    ['refuses port 65536', 'nginx:65536', /not 1-65535/],
    ['refuses a non-numeric port', 'nginx:https', /not 1-65535/],
    ['refuses an unbracketed IPv6 address', '::1:443', /must be in brackets/],
    ['refuses a bracketed non-IPv6', '[nginx]:443', /not an IPv6 address/],
    ['refuses a missing host', ':443', /host is missing/],
    ['refuses a host with a path in it', 'nginx/x:443', /not an IPv4 address or host name/],
  ];
  for (const [name, input, message] of bad) {
    it(name, () =>
      assert.throws(
        () => parseEndpoints(`ok:1,${input}`),
        (err: unknown) => {
          assert.equal(errorCode(err), 'CONFIG_INVALID');
          assert.match((err as Error).message, message);
          assert.ok((err as Error).message.includes(JSON.stringify(input)), 'names the entry');
          return true;
        },
      ),
    );
  }
});
