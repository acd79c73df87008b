import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { systemClock } from '../../src/lifecycle/clock.js';
import { CattleClient } from '../../src/platform/rancher/cattle-client.js';
import { DENT_LABEL, RancherPlatform } from '../../src/platform/rancher/rancher-platform.js';
import { silentLogger } from '../../src/util/log.js';
import { startFakeCattle, type FakeCattle } from '../../devenv/fake-cattle.js';

/** A client of the fake Cattle API, with its credentials. */
function clientOf(cattle: FakeCattle): CattleClient {
  return new CattleClient({
    url: cattle.url,
    accessKey: cattle.accessKey,
    secretKey: cattle.secretKey,
    timeoutMs: 5000,
    log: silentLogger,
  });
}

describe('rancher: Cattle client TLS (CA bundle, certificate pinning)', () => {
  let server: https.Server;
  let port: number;
  let certPem: string;
  let fingerprint: string;
  const seenAuth: string[] = [];

  before(async () => {
    const b = await new SelfSignedIssuer(systemClock).issue(
      { name: 'localhost', domains: ['localhost'], source: 't' },
      'ecdsa-p256',
    );
    certPem = b.cert;
    fingerprint = new X509Certificate(b.cert).fingerprint256.replace(/:/g, '').toLowerCase();
    server = https.createServer({ cert: b.cert, key: b.privkey }, (req, res) => {
      seenAuth.push(String(req.headers.authorization ?? ''));
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({ type: 'collection', data: [{ id: '1a5' }], pagination: { next: null } }),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => (seenAuth.length = 0));

  const client = (opts: { pin?: string; ca?: string; host?: string }) =>
    new CattleClient({
      url: `https://${opts.host ?? '127.0.0.1'}:${port}/v1`,
      accessKey: 'ak',
      secretKey: 'sk',
      timeoutMs: 2000,
      attempts: 1,
      log: silentLogger,
      ...(opts.pin && { pinSha256: opts.pin }),
      ...(opts.ca && { caBundlePem: opts.ca }),
    });

  it('refuses a self-signed server without a CA bundle or pin, before sending credentials', async () => {
    await assert.rejects(client({}).projectId(), { code: 'PLATFORM_TLS' });
    assert.deepEqual(seenAuth, []);
  });
  it('trusts the server through CATTLE_CA_BUNDLE', async () => {
    assert.equal(await client({ ca: certPem, host: 'localhost' }).projectId(), '1a5');
  });
  it('trusts exactly the pinned certificate, even by IP address', async () => {
    assert.equal(await client({ pin: fingerprint }).projectId(), '1a5');
    assert.equal(seenAuth.length, 1);
  });
  it('rejects a server whose certificate does not match the pin, without sending credentials', async () => {
    const wrong = 'ab'.repeat(32);
    const err = await client({ pin: wrong })
      .projectId()
      .catch((e: unknown) => e);
    assert.equal((err as { code?: string }).code, 'PLATFORM_TLS');
    assert.match(
      String((err as Error).message),
      new RegExp(`fingerprint ${fingerprint}, not the pinned ${wrong}`),
    );
    assert.deepEqual(seenAuth, [], 'no request reached the server');
  });
});

describe('rancher: discovery reads every page', () => {
  it('finds all 1200 labelled services, across pages of at most 1000', async function () {
    this.timeout(30_000);
    const cattle = await startFakeCattle();
    try {
      for (let i = 0; i < 1200; i++) {
        cattle.addService({ name: `s${i}`, labels: { [DENT_LABEL]: `h${i}.example.com` } });
      }
      const client = clientOf(cattle);
      const found = await new RancherPlatform(client, {
        domains: async () => '',
        log: silentLogger,
      }).discover();
      assert.equal(found.specs.length, 1200);
      const pages = cattle.requests.filter((r) => r.path.endsWith('/services'));
      assert.equal(pages.length, 2, 'two pages of services');
      assert.match(pages[1]?.query ?? '', /marker=m1000/);
    } finally {
      await cattle.close();
    }
  });
});

describe('rancher: listKept, a collection read every pass and parsed only when it changed', () => {
  it('hands back the very same items while the pages are the same, and maps again only a changed page', async () => {
    const cattle = await startFakeCattle();
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        ids.push(cattle.addService({ name: `s${i}`, labels: { [DENT_LABEL]: `h${i}.test` } }).id);
      }
      const client = clientOf(cattle);
      let mapped = 0;
      const map = (raw: unknown) => {
        mapped++;
        return { ...(raw as { id: string; name: string }) };
      };
      // Pages of two: three pages.
      const first = await client.listKept('services', { limit: '2' }, map);
      assert.equal(first.length, 5);
      assert.equal(mapped, 5);
      const again = await client.listKept('services', { limit: '2' }, map);
      assert.equal(again, first, 'the same array');
      assert.equal(mapped, 5, 'nothing mapped again');
      assert.equal(cattle.requests.filter((r) => r.path.endsWith('/services')).length, 6);

      cattle.setLabels(ids[4] as string, { [DENT_LABEL]: 'changed.test' });
      const changed = await client.listKept('services', { limit: '2' }, map);
      assert.notEqual(changed, first);
      assert.equal(mapped, 6, 'only the last page (one service) mapped again');
      for (let i = 0; i < 4; i++) assert.equal(changed[i], first[i], `item ${i} kept`);
      assert.notEqual(changed[4], first[4]);
    } finally {
      await cattle.close();
    }
  });

  it('hashes an unchanged page as it arrives and never joins it into one buffer; a changed one is joined and parsed', async () => {
    const cattle = await startFakeCattle();
    const concat = Buffer.concat;
    try {
      const ids: string[] = [];
      for (let i = 0; i < 400; i++) {
        ids.push(cattle.addService({ name: `s${i}`, labels: { [DENT_LABEL]: `h${i}.test` } }).id);
      }
      const client = clientOf(cattle);
      const map = (raw: unknown) => ({ id: (raw as { id: string }).id });
      const first = await client.listKept('services', {}, map);
      assert.equal(first.length, 400);
      // The page (about 200 KB) arrives in several chunks: joining them
      // copies it (with 1000 certificates, a 3 MB copy every idle pass).
      let joined = 0;
      Buffer.concat = ((list: readonly Uint8Array[], length?: number) => {
        const out = concat(list, length);
        if (out.length >= 64 * 1024) joined += out.length;
        return out;
      }) as typeof Buffer.concat;
      const again = await client.listKept('services', {}, map);
      assert.equal(again, first, 'the same items');
      assert.equal(joined, 0, 'no copy of the unchanged page');
      cattle.setLabels(ids[399] as string, { [DENT_LABEL]: 'changed.test' });
      const changed = await client.listKept('services', {}, map);
      assert.notEqual(changed, first, 'a changed page is parsed');
      assert.equal(changed.length, 400);
      assert.ok(joined >= 64 * 1024, 'and joined to be parsed');
    } finally {
      Buffer.concat = concat;
      await cattle.close();
    }
  });

  it("RancherPlatform.copyVersion: a certificate's listed copy is the same object from pass to pass until its page changes", async () => {
    const cattle = await startFakeCattle();
    try {
      const issuer = new SelfSignedIssuer(systemClock);
      for (const name of ['a', 'b']) {
        const b = await issuer.issue(
          { name, domains: [`${name}.test`], source: 't' },
          'ecdsa-p256',
        );
        cattle.addCertificate({ name, cert: b.cert, key: b.privkey });
      }
      const client = clientOf(cattle);
      const platform = new RancherPlatform(client, { domains: async () => '', log: silentLogger });
      const inPass = async <T>(fn: () => T | Promise<T>): Promise<T> => {
        platform.beginPass();
        try {
          return await fn();
        } finally {
          platform.endPass();
        }
      };
      assert.equal(await platform.copyVersion('a'), undefined, 'outside a pass: cannot vouch');
      const v1 = await inPass(() => platform.copyVersion('a'));
      assert.ok(v1);
      assert.equal(await inPass(() => platform.copyVersion('a')), v1);
      assert.equal(await inPass(() => platform.copyVersion('none')), null);
      // Once the pass's listing is read, an answer at hand: no promise per
      // certificate in the idle pass (reconcile/steady.ts checks in place).
      await inPass(async () => {
        await platform.copyVersion('a');
        const again = platform.copyVersion('a');
        assert.ok(!(again instanceof Promise), 'a plain value once listed');
        assert.equal(again, v1);
        assert.equal(platform.copyVersion('none'), null);
      });
      const b = await issuer.issue({ name: 'c', domains: ['c.test'], source: 't' }, 'ecdsa-p256');
      cattle.addCertificate({ name: 'c', cert: b.cert, key: b.privkey });
      const v2 = await inPass(() => platform.copyVersion('a'));
      assert.ok(v2);
      assert.notEqual(v2, v1, 'its page changed');
      assert.equal((await inPass(() => platform.read('a')))?.serial !== undefined, true);
    } finally {
      await cattle.close();
    }
  });
});

describe('rancher: discovery reads unchanged services once', () => {
  it('hands out the very same specs while services and DOMAINS are unchanged, and new ones for a changed service', async () => {
    const cattle = await startFakeCattle();
    try {
      const a = cattle.addService({ name: 'a', labels: { [DENT_LABEL]: 'a.test' } });
      cattle.addService({ name: 'b', labels: { [DENT_LABEL]: 'b.test' } });
      let domains = 'env.test';
      const platform = new RancherPlatform(clientOf(cattle), {
        domains: async () => domains,
        log: silentLogger,
      });
      const first = await platform.discover();
      assert.deepEqual(
        first.specs.map((s) => s.name),
        ['env.test', 'a.test', 'b.test'],
      );
      const again = await platform.discover();
      again.specs.forEach((s, i) =>
        assert.equal(s, first.specs[i], `spec ${i} is the same object`),
      );

      cattle.setLabels(a.id, { [DENT_LABEL]: 'a2.test' });
      domains = 'env2.test';
      const changed = await platform.discover();
      assert.deepEqual(
        changed.specs.map((s) => s.name),
        ['env2.test', 'a2.test', 'b.test'],
      );
      assert.notEqual(changed.specs[0], first.specs[0]);
      // b's page changed (a is on it): read again, an equal spec.
      assert.deepEqual(changed.specs[2], first.specs[2]);
    } finally {
      await cattle.close();
    }
  });
});
