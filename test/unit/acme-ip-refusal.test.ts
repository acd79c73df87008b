// AcmeIssuer and IP-address identifiers (RFC 8738; issue 12 item 4),
// against a minimal CA on loopback that answers newOrder as Let's Encrypt's
// Boulder does for an IP address under a profile other than shortlived
// (ra.go: rejectedIdentifier "Profile %q does not permit %s type
// identifiers"). Pebble 2.9 issues IP certificates under every profile, so
// this refusal cannot be had from it.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AcmeIssuer } from '../../src/acme/acme-issuer.js';
import { configureAcmeHttp } from '../../src/acme/http.js';
import type { ChallengeResponder } from '../../src/challenge/responder.js';
import { SidecarError } from '../../src/domain/errors.js';
import type { CertSpec } from '../../src/domain/types.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { silentLogger } from '../../src/util/log.js';

const unusedResponder: ChallengeResponder = {
  present: () => Promise.reject(new Error('not reached')),
  verify: () => Promise.reject(new Error('not reached')),
  cleanup: () => Promise.resolve(),
};

interface NewOrder {
  identifiers: { type: string; value: string }[];
  profile?: string;
}

/** A CA up to newOrder: refuses ip identifiers unless the profile is shortlived; else 403. */
function fakeCa(newOrders: NewOrder[]): http.Server {
  return http.createServer((req, res) => {
    const base = `http://${req.headers.host}`;
    const nonce = () =>
      res.setHeader('replay-nonce', `nonce-${Math.random().toString(36).slice(2)}`);
    if (req.url === '/dir') {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          newNonce: `${base}/nonce`,
          newAccount: `${base}/new-acct`,
          newOrder: `${base}/new-order`,
          meta: { profiles: { classic: '90 days', tlsserver: '45 days', shortlived: '160 hours' } },
        }),
      );
      return;
    }
    if (req.url === '/nonce') {
      nonce();
      res.statusCode = req.method === 'HEAD' ? 200 : 204;
      res.end();
      return;
    }
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      nonce();
      res.setHeader('content-type', 'application/json');
      if (req.url === '/new-acct') {
        res.statusCode = 201;
        res.setHeader('location', `${base}/acct/1`);
        res.end(JSON.stringify({ status: 'valid' }));
        return;
      }
      let problem = { type: 'unauthorized', detail: 'stop here', status: 403 };
      if (req.url === '/new-order') {
        const jws = JSON.parse(body) as { payload: string };
        const order = JSON.parse(Buffer.from(jws.payload, 'base64url').toString()) as NewOrder;
        newOrders.push(order);
        const ip = order.identifiers.find((i) => i.type === 'ip');
        if (ip && order.profile !== 'shortlived') {
          problem = {
            type: 'rejectedIdentifier',
            detail: `Profile "${order.profile ?? 'classic'}" does not permit ip type identifiers`,
            status: 400,
          };
        }
      }
      res.statusCode = problem.status;
      res.setHeader('content-type', 'application/problem+json');
      res.end(JSON.stringify({ ...problem, type: `urn:ietf:params:acme:error:${problem.type}` }));
    });
  });
}

describe('acme: IP identifiers on newOrder', function () {
  this.timeout(30_000);
  let dir: string;
  before(async () => {
    // The problem documents reach the classification through our HTTP
    // adapter. The same per-request deadline as error-messages.test.ts: the
    // adapter is installed once per process, with the first caller's deadline.
    configureAcmeHttp({ timeoutMs: 400 });
    dir = await mkdtemp(path.join(os.tmpdir(), 'acme-ip-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function issue(spec: CertSpec): Promise<{ err: unknown; newOrders: NewOrder[] }> {
    const newOrders: NewOrder[] = [];
    const server = fakeCa(newOrders);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/dir`;
    try {
      const issuer = new AcmeIssuer({
        phase: 'production',
        directoryUrl: url,
        store: new FsCertStore(path.join(dir, Math.random().toString(36).slice(2))),
        responder: unusedResponder,
        log: silentLogger,
      });
      const err = await issuer.issue(spec, 'ecdsa-p256').then(
        () => assert.fail('issued against a CA that refuses every order'),
        (e: unknown) => e,
      );
      return { err, newOrders };
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  }

  const spec = (domains: string[], profile?: string): CertSpec => ({
    name: 'x',
    domains,
    source: 'env:DOMAINS',
    ...(profile !== undefined && { profile, profileFrom: 'ACME_PROFILE' }),
  });

  it('sends an address as an ip identifier beside dns ones (RFC 8738 section 3)', async () => {
    const { newOrders } = await issue(
      spec(['www.example.com', '192.0.2.1', '2001:db8::1'], 'shortlived'),
    );
    assert.deepEqual(newOrders, [
      {
        identifiers: [
          { type: 'dns', value: 'www.example.com' },
          { type: 'ip', value: '192.0.2.1' },
          { type: 'ip', value: '2001:db8::1' },
        ],
        profile: 'shortlived',
      },
    ]);
  });

  it('turns a refusal of the address under classic into ACME_IP_REFUSED naming shortlived', async () => {
    const { err, newOrders } = await issue(spec(['192.0.2.1'], 'classic'));
    assert.equal(newOrders.length, 1);
    assert.ok(err instanceof SidecarError, String(err));
    assert.equal(err.code, 'ACME_IP_REFUSED');
    assert.equal(
      err.message,
      'the CA refused the IP address "192.0.2.1" under profile "classic" (rejectedIdentifier: Profile "classic" does not permit ip type identifiers); set ACME_PROFILE to "shortlived", the profile that issues IP-address certificates at Let\'s Encrypt (offered: classic, tlsserver, shortlived)',
    );
  });

  it('says so when no profile was named (the CA chose its default)', async () => {
    const { err } = await issue(spec(['192.0.2.1']));
    assert.ok(err instanceof SidecarError, String(err));
    assert.equal(err.code, 'ACME_IP_REFUSED');
    assert.match(err.message, /under its default profile/);
    assert.match(
      err.message,
      /set ACME_PROFILE \(or the io\.acme-sidecar\.profile label\) to "shortlived"/,
    );
  });

  it('leaves a refusal of an order without addresses to the usual classification', async () => {
    const { err } = await issue(spec(['www.example.com'], 'classic'));
    assert.ok(err instanceof SidecarError, String(err));
    assert.equal(err.code, 'ACME_UNAUTHORIZED', err.message);
  });
});
