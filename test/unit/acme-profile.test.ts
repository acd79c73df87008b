// AcmeIssuer and profiles (issue 12, item 2), against a minimal CA on
// loopback: the newOrder payload carries `profile`, and a profile the
// directory's meta.profiles lacks (or any, when it lists none) is refused
// with ACME_PROFILE_INVALID before an order is placed.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AcmeIssuer } from '../../src/acme/acme-issuer.js';
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

/** A CA up to newOrder, which it records and refuses (nothing further is needed here). */
function fakeCa(meta: Record<string, unknown> | undefined, newOrders: unknown[]): http.Server {
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
          ...(meta && { meta }),
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
      if (req.url === '/new-order') {
        const jws = JSON.parse(body) as { payload: string };
        newOrders.push(JSON.parse(Buffer.from(jws.payload, 'base64url').toString()));
      }
      res.statusCode = 403;
      res.setHeader('content-type', 'application/problem+json');
      res.end(
        JSON.stringify({
          type: 'urn:ietf:params:acme:error:unauthorized',
          detail: 'stop here',
          status: 403,
        }),
      );
    });
  });
}

describe('acme: profiles on newOrder', function () {
  this.timeout(30_000);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'acme-profile-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function issue(
    meta: Record<string, unknown> | undefined,
    spec: Partial<CertSpec>,
  ): Promise<{ err: unknown; newOrders: unknown[]; url: string }> {
    const newOrders: unknown[] = [];
    const server = fakeCa(meta, newOrders);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/dir`;
    try {
      const issuer = new AcmeIssuer({
        phase: 'staging',
        directoryUrl: url,
        store: new FsCertStore(path.join(dir, Math.random().toString(36).slice(2))),
        responder: unusedResponder,
        log: silentLogger,
      });
      const err = await issuer
        .issue({ name: 'a', domains: ['a.test'], source: 'test', ...spec }, 'ecdsa-p256')
        .then(
          () => assert.fail('issued against a CA that refuses every order'),
          (e: unknown) => e,
        );
      return { err, newOrders, url };
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  }

  const OFFERED = { profiles: { classic: '90 days', shortlived: '160 hours' } };

  it('names the profile in the newOrder payload when it is on offer', async () => {
    const { newOrders } = await issue(OFFERED, {
      profile: 'shortlived',
      profileFrom: 'ACME_PROFILE',
    });
    assert.deepEqual(newOrders, [
      { identifiers: [{ type: 'dns', value: 'a.test' }], profile: 'shortlived' },
    ]);
  });

  it('sends no profile field when none is asked for', async () => {
    const { newOrders } = await issue(OFFERED, {});
    assert.deepEqual(newOrders, [{ identifiers: [{ type: 'dns', value: 'a.test' }] }]);
  });

  it('refuses an unknown profile before any order, naming the setting, the value and the offer', async () => {
    const { err, newOrders, url } = await issue(OFFERED, {
      profile: 'tlsserver',
      profileFrom: 'ACME_PROFILE',
    });
    assert.deepEqual(newOrders, []);
    assert.ok(err instanceof SidecarError, String(err));
    assert.equal(err.code, 'ACME_PROFILE_INVALID');
    assert.equal(
      err.message,
      `ACME_PROFILE="tlsserver" is not a profile the CA at ${url} offers; it offers: classic (90 days), shortlived (160 hours)`,
    );
  });

  it('refuses any profile against a CA that lists none, naming the label that set it', async () => {
    const from = 'rancher:service/web(1s1):io.acme-sidecar.profile';
    const { err, newOrders, url } = await issue(undefined, {
      profile: 'classic',
      profileFrom: from,
    });
    assert.deepEqual(newOrders, []);
    assert.ok(err instanceof SidecarError, String(err));
    assert.equal(err.code, 'ACME_PROFILE_INVALID');
    assert.equal(
      err.message,
      `${from}="classic", but the CA at ${url} offers no profiles (its directory lists no meta.profiles): unset ${from}`,
    );
  });
});
