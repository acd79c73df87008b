import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AcmeIssuer } from '../../src/acme/acme-issuer.js';
import { configureAcmeHttp } from '../../src/acme/http.js';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import type { ChallengeResponder } from '../../src/challenge/responder.js';
import { SidecarError } from '../../src/domain/errors.js';
import { FixedClock } from '../../src/lifecycle/clock.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { silentLogger } from '../../src/util/log.js';

/**
 * Every way a CA can fail, produced for real on loopback (a closed port, a
 * server that never answers, an untrusted certificate, a web page instead
 * of a directory, a problem document), through acme-client as the daemon
 * uses it. Each message is held word for word: it is what a person reads on
 * the status page, in the log and from `once`.
 */

const TIMEOUT_MS = 400;
const LIBRARY_WORDS = /Cannot read properties|undefined|TypeError|at .*\.js:\d+|axios|acme-client/;

const unusedResponder: ChallengeResponder = {
  present: () => Promise.reject(new Error('not reached')),
  verify: () => Promise.reject(new Error('not reached')),
  cleanup: () => Promise.resolve(),
};

type Server = http.Server | https.Server | net.Server;

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
  );
}

function close(server: Server): Promise<void> {
  (server as http.Server).closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A minimal RFC 8555 CA up to the account: directory, nonces, then `newAccount` answered by `answer`. */
function fakeCa(answer: (res: http.ServerResponse) => void): http.Server {
  return http.createServer((req, res) => {
    const base = `http://${req.headers.host}`;
    if (req.url === '/dir') {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          newNonce: `${base}/nonce`,
          newAccount: `${base}/new-acct`,
          newOrder: `${base}/new-order`,
        }),
      );
    } else if (req.url === '/nonce') {
      res.setHeader('replay-nonce', `nonce-${Math.random().toString(36).slice(2)}`);
      res.statusCode = req.method === 'HEAD' ? 200 : 204;
      res.end();
    } else {
      req.resume();
      req.on('end', () => {
        res.setHeader('replay-nonce', `nonce-${Math.random().toString(36).slice(2)}`);
        answer(res);
      });
    }
  });
}

async function untrustedTlsServer(): Promise<https.Server> {
  const clock = new FixedClock(new Date('2026-01-01T00:00:00Z'));
  const { cert, privkey } = await new SelfSignedIssuer(clock, 3650).issue(
    { name: 'ca', domains: ['ca.test'], source: 'test' } as never,
    'ecdsa-p256',
  );
  return https.createServer({ cert, key: privkey }, (_req, res) => res.end('{}'));
}

interface Case {
  name: string;
  /** Starts what the CA URL points at; returns the directory URL and how to stop it. */
  start: () => Promise<{ url: string; stop: () => Promise<void> }>;
  code: string;
  retryable: boolean;
  retryAfter?: number;
  message: (url: string) => string;
}

const cases: Case[] = [
  {
    name: 'a closed port says the connection was refused and which setting to check',
    start: async () => {
      const s = net.createServer();
      const port = await listen(s);
      await close(s);
      return { url: `http://127.0.0.1:${port}/dir`, stop: async () => {} };
    },
    code: 'ACME_CA_UNREACHABLE',
    retryable: true,
    message: (url) =>
      `CA unreachable: GET ${url} was refused (ECONNREFUSED): nothing listens on ${new URL(url).host}. Check that the CA is running and that ACME_STAGING_DIRECTORY_URL names the right host and port`,
  },
  {
    name: 'a server that never answers says how long it waited and which setting sets the limit',
    start: async () => {
      const s = net.createServer(() => {});
      const port = await listen(s);
      return {
        url: `http://127.0.0.1:${port}/dir`,
        stop: () => {
          s.close();
          return Promise.resolve();
        },
      };
    },
    code: 'ACME_TIMEOUT',
    retryable: true,
    message: (url) =>
      `CA did not answer in time: GET ${url} got no answer within ${TIMEOUT_MS} ms. Check that the CA is reachable from this host and not overloaded (ACME_TIMEOUT_SECONDS sets the limit)`,
  },
  {
    name: 'a self-signed certificate on the CA says it is not trusted and points at ACME_CA_BUNDLE',
    start: async () => {
      const s = await untrustedTlsServer();
      const port = await listen(s);
      return { url: `https://127.0.0.1:${port}/dir`, stop: () => close(s) };
    },
    code: 'ACME_CA_UNREACHABLE',
    retryable: true,
    message: (url) =>
      `CA not trusted: GET ${url} failed: the HTTPS certificate of ${new URL(url).host} is self-signed (DEPTH_ZERO_SELF_SIGNED_CERT). Check ACME_STAGING_DIRECTORY_URL, or add the CA's root certificate to ACME_CA_BUNDLE`,
  },
  {
    name: 'a web page instead of a directory says what came back and that it is not JSON',
    start: async () => {
      const s = http.createServer((_req, res) => {
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.end('<html><body>It works!</body></html>');
      });
      const port = await listen(s);
      return { url: `http://127.0.0.1:${port}/dir`, stop: () => close(s) };
    },
    code: 'ACME_BAD_RESPONSE',
    retryable: true,
    message: (url) =>
      `CA answered something other than ACME: GET ${url} answered HTTP 200 with 35 bytes of text/html, not JSON. Check that ACME_STAGING_DIRECTORY_URL points to an ACME directory (RFC 8555 §7.1.1), not a web page or a proxy`,
  },
  {
    name: 'a rateLimited problem document keeps the CA detail and says when the sidecar tries again',
    start: async () => {
      const s = fakeCa((res) => {
        res.statusCode = 429;
        res.setHeader('content-type', 'application/problem+json');
        res.setHeader('retry-after', '3600');
        res.end(
          JSON.stringify({
            type: 'urn:ietf:params:acme:error:rateLimited',
            detail: 'too many new registrations (10) from this IP address in the last 3h0m0s',
            status: 429,
          }),
        );
      });
      const port = await listen(s);
      return { url: `http://127.0.0.1:${port}/dir`, stop: () => close(s) };
    },
    code: 'ACME_RATE_LIMITED',
    retryable: true,
    retryAfter: 3600,
    message: (url) =>
      `rateLimited: too many new registrations (10) from this IP address in the last 3h0m0s (POST ${new URL(url).origin}/new-acct answered HTTP 429). The CA limits how often it issues; the sidecar waits as asked and tries again by itself (in 3600 s)`,
  },
];

describe('acme: error messages a person can act on', function () {
  this.timeout(30_000);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'acme-errors-'));
    configureAcmeHttp({ timeoutMs: TIMEOUT_MS });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  for (const c of cases) {
    it(c.name, async () => {
      const { url, stop } = await c.start();
      try {
        const issuer = new AcmeIssuer({
          phase: 'staging',
          directoryUrl: url,
          store: new FsCertStore(path.join(dir, c.code + Math.random().toString(36).slice(2))),
          responder: unusedResponder,
          log: silentLogger,
        });
        const err = await issuer
          .issue({ name: 'a', domains: ['a.test'], source: 'test' } as never, 'ecdsa-p256')
          .then(
            () => assert.fail('issued against a failing CA'),
            (e: unknown) => e,
          );
        assert.ok(err instanceof SidecarError, String(err));
        assert.equal(err.message, c.message(url));
        assert.equal(err.code, c.code);
        assert.equal(err.retryable, c.retryable);
        assert.equal(err.retryAfter, c.retryAfter);
        assert.doesNotMatch(err.message, LIBRARY_WORDS);
      } finally {
        await stop();
      }
    });
  }
});
