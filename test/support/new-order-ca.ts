/**
 * A minimal ACME CA on loopback that goes as far as newOrder and no further,
 * for unit tests of what AcmeIssuer sends in newOrder and how it classifies a
 * refusal that Pebble cannot be made to give (Let's Encrypt's own answers).
 * It is NOT a stand-in for a CA in any test that issues: those use Pebble.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AcmeIssuer } from '../../src/acme/acme-issuer.js';
import type { ChallengeResponder } from '../../src/challenge/responder.js';
import type { AcmePhase, CertSpec } from '../../src/domain/types.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { silentLogger } from '../../src/util/log.js';

export interface NewOrderPayload {
  identifiers: { type: string; value: string }[];
  profile?: string;
}

/** An RFC 7807 problem, `type` without the `urn:ietf:params:acme:error:` prefix. */
export interface Problem {
  type: string;
  detail: string;
  status: number;
}

const STOP_HERE: Problem = { type: 'unauthorized', detail: 'stop here', status: 403 };

const unusedResponder: ChallengeResponder = {
  present: () => Promise.reject(new Error('not reached')),
  verify: () => Promise.reject(new Error('not reached')),
  cleanup: () => Promise.resolve(),
};

/**
 * The CA: its directory carries `meta` when given; newAccount succeeds;
 * every newOrder payload is recorded and answered with `refuse(order)`, or
 * a 403 "stop here" by default (so nothing is ever issued).
 */
function newOrderCa(
  meta: Record<string, unknown> | undefined,
  newOrders: NewOrderPayload[],
  refuse: (order: NewOrderPayload) => Problem | undefined,
): http.Server {
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
      let problem = STOP_HERE;
      if (req.url === '/new-order') {
        const jws = JSON.parse(body) as { payload: string };
        const order = JSON.parse(
          Buffer.from(jws.payload, 'base64url').toString(),
        ) as NewOrderPayload;
        newOrders.push(order);
        problem = refuse(order) ?? STOP_HERE;
      }
      res.statusCode = problem.status;
      res.setHeader('content-type', 'application/problem+json');
      res.end(JSON.stringify({ ...problem, type: `urn:ietf:params:acme:error:${problem.type}` }));
    });
  });
}

export interface NewOrderRun {
  /** What issue() rejected with (it never resolves against this CA). */
  readonly err: unknown;
  readonly newOrders: NewOrderPayload[];
  /** The CA's directory URL. */
  readonly url: string;
}

/**
 * Starts the CA, runs one AcmeIssuer.issue(spec) against it with a fresh
 * store, and stops it.
 */
export async function issueAgainstNewOrderCa(opts: {
  readonly spec: CertSpec;
  readonly phase: AcmePhase;
  readonly meta?: Record<string, unknown>;
  readonly refuse?: (order: NewOrderPayload) => Problem | undefined;
}): Promise<NewOrderRun> {
  const newOrders: NewOrderPayload[] = [];
  const server = newOrderCa(opts.meta, newOrders, opts.refuse ?? (() => undefined));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/dir`;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'acme-new-order-'));
  try {
    const issuer = new AcmeIssuer({
      phase: opts.phase,
      directoryUrl: url,
      store: new FsCertStore(dir),
      responder: unusedResponder,
      log: silentLogger,
    });
    const err = await issuer.issue(opts.spec, 'ecdsa-p256').then(
      () => assert.fail('issued against a CA that refuses every order'),
      (e: unknown) => e,
    );
    return { err, newOrders, url };
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  }
}
