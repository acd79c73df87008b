// How many requests an order costs against a real Pebble 2.9 (through a real
// nginx webroot): the nonce pool (src/acme/nonce-pool.ts) and the polls
// (src/acme/poll.ts), at no nonce rejection and at half of all nonces
// rejected (PEBBLE_WFE_NONCEREJECT=50).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { AcmeIssuer } from '../../src/acme/acme-issuer.js';
import { acmeRequestCounts } from '../../src/acme/http.js';
import { WebrootResponder } from '../../src/challenge/webroot-responder.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { silentLogger } from '../../src/util/log.js';
import { webrootStagingIssuer } from '../support/webroot-issuer.js';
import { chainVerifiesTo } from '../../src/util/x509.js';

const ORDERS = 8;

/** Requests made since `before`, by kind ("newNonce", "newOrder"...), and in all. */
function since(before: Map<string, number>): { byKind: Map<string, number>; total: number } {
  const byKind = new Map<string, number>();
  let total = 0;
  for (const [key, n] of acmeRequestCounts) {
    const d = n - (before.get(key) ?? 0);
    if (d === 0) continue;
    const kind = key.split(' ')[0] ?? key;
    byKind.set(kind, (byKind.get(kind) ?? 0) + d);
    total += d;
  }
  return { byKind, total };
}

function describeCounts(c: { byKind: Map<string, number>; total: number }, orders: number) {
  const parts = [...c.byKind].map(([k, v]) => `${k} ${(v / orders).toFixed(2)}`).join(', ');
  return `${(c.total / orders).toFixed(2)} ACME requests per order (${parts})`;
}

for (const reject of [0, 50]) {
  describe(`e2e: ACME requests per order, Pebble rejecting ${reject} % of nonces`, function () {
    this.timeout(240_000);
    let env: DevEnv;
    let stateDir: string;
    let issuer: AcmeIssuer;

    before(async () => {
      env = await startDevEnv({ pebble: { nonceRejectPercent: reject } });
      stateDir = await mkdtemp(path.join(os.tmpdir(), 'acme-economy-'));
      issuer = await webrootStagingIssuer(env, stateDir);
      // The account (directory, registration): not part of an order.
      await issuer.issue(
        { name: 'warm.demo.test', domains: ['warm.demo.test'], source: 'test' },
        'ecdsa-p256',
      );
    });
    after(async () => {
      await env?.stop();
      if (stateDir) await rm(stateDir, { recursive: true, force: true });
    });

    it(`issues ${ORDERS} certificates in a row with no nonce HEAD (every answer's nonce is used, a badNonce one by its retry) and at most 8 requests per order besides rejected ones`, async () => {
      const before = new Map(acmeRequestCounts);
      const root = await env.staging.getRootPem();
      for (let i = 1; i <= ORDERS; i++) {
        const name = `e${reject}-${i}.demo.test`;
        const bundle = await issuer.issue({ name, domains: [name], source: 'test' }, 'ecdsa-p256');
        assert.ok(chainVerifiesTo(bundle.fullchain, root), name);
      }
      const c = since(before);
      const figure = describeCounts(c, ORDERS);
      console.log(`      PEBBLE_WFE_NONCEREJECT=${reject}: ${figure}`);
      // Every answer carries a nonce for the next request, a badNonce answer
      // included (RFC 8555 §6.5): a HEAD is never needed between orders.
      assert.equal(c.byKind.get('newNonce') ?? 0, 0, figure);
      const rejected = acmeRequestCountsOf('400', before);
      // Without rejections: the RFC 8555 minimum of 7 (newOrder,
      // authorization, challenge, one authorization poll, finalize, one
      // order poll, certificate) plus at most one extra poll.
      assert.ok((c.total - rejected) / ORDERS <= 8, figure);
      if (reject === 0) assert.equal(rejected, 0, figure);
      else assert.ok(rejected > 0, `Pebble rejected no nonce at all: ${figure}`);
    });

    if (reject === 0) {
      it('asks renewalInfo about 4 certificates at once from a fresh process with one directory GET', async () => {
        const bundles = [];
        for (let i = 1; i <= 4; i++) {
          const name = `ari${i}.demo.test`;
          bundles.push(await issuer.issue({ name, domains: [name], source: 'test' }, 'ecdsa-p256'));
        }
        // A new issuer, as in a new `once`: it has not read the directory yet.
        const fresh = new AcmeIssuer({
          phase: 'staging',
          directoryUrl: env.staging.directoryUrl,
          store: new FsCertStore(stateDir),
          responder: new WebrootResponder({
            webroot: env.webroot,
            selfCheck: false,
            log: silentLogger,
          }),
          log: silentLogger,
          ari: true,
        });
        const before = new Map(acmeRequestCounts);
        const answers = await Promise.all(bundles.map((b) => fresh.renewalInfo(b.cert)));
        const c = since(before);
        const figure = describeCounts(c, bundles.length).replace('per order', 'per certificate');
        console.log(`      renewalInfo for 4 at once: ${figure}`);
        for (const a of answers) assert.equal(a.kind, 'info', figure);
        assert.equal(c.byKind.get('directory'), 1, figure);
        assert.equal(c.byKind.get('renewalInfo'), 4, figure);
        assert.equal(c.total, 5, figure);
      });
    }
  });
}

/** Requests answered with `status` since `before`. */
function acmeRequestCountsOf(status: string, before: Map<string, number>): number {
  let n = 0;
  for (const [key, v] of acmeRequestCounts) {
    if (key.endsWith(` ${status}`)) n += v - (before.get(key) ?? 0);
  }
  return n;
}
