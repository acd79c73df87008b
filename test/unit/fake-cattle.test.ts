// Contract tests of the fake Cattle API (devenv/fake-cattle.ts), so the
// fixture cannot drift from /work/shared/docs/rancher-api.md unnoticed.
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { FixedClock, systemClock } from '../../src/lifecycle/clock.js';
import {
  CattleApiError,
  startFakeCattle,
  type CattleObject,
  type FakeCattle,
} from '../../devenv/fake-cattle.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

type Json = Record<string, unknown>;
interface Reply {
  status: number;
  headers: Headers;
  body: Json;
}

function basic(user: string, pass: string): string {
  return 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
}

/** Calls the fake; `path` is relative to `/v2-beta` unless it is a full URL. */
async function call(
  fc: FakeCattle,
  method: string,
  path: string,
  body?: unknown,
  opts: { auth?: string | null; signal?: AbortSignal } = {},
): Promise<Reply> {
  const url = path.startsWith('http') ? path : fc.url.replace(/\/v1$/, '/v2-beta') + path;
  const headers: Record<string, string> = { Accept: 'application/json' };
  const auth = opts.auth === undefined ? basic(fc.accessKey, fc.secretKey) : opts.auth;
  if (auth) headers.Authorization = auth;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: opts.signal,
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Json) : {} };
}

const data = (r: Reply) => r.body.data as CattleObject[];
const pagination = (r: Reply) => r.body.pagination as Json;
const names = (r: Reply) => data(r).map((o) => o.name);

function assertError(r: Reply, status: number, code: string, fieldName?: string): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.type, 'error');
  assert.equal(r.body.status, status);
  assert.equal(r.body.code, code);
  assert.ok('message' in r.body && 'detail' in r.body);
  assert.equal(r.body.fieldName, fieldName);
}

async function selfSigned(domains: string[], keyType: 'ecdsa-p256' | 'rsa-2048' = 'ecdsa-p256') {
  return new SelfSignedIssuer(systemClock).issue(
    { name: domains[0] ?? 'x', domains, source: 'test' },
    keyType,
  );
}

/** A leaf issued by an intermediate issued by a root, like an ACME CA's. */
async function caIssued(domains: string[], subject = `CN=${domains[0]}`) {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const gen = () =>
    webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
  const [rootKeys, midKeys, leafKeys] = await Promise.all([gen(), gen(), gen()]);
  const notBefore = new Date(Date.now() - 3600_000);
  const notAfter = new Date(Date.now() + 90 * 86400_000);
  const ca = [new x509.BasicConstraintsExtension(true, undefined, true)];
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'C=US, O=Test CA, CN=Test Root',
    notBefore,
    notAfter,
    signingAlgorithm: alg,
    keys: rootKeys,
    extensions: ca,
  });
  const mid = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: 'C=US, O=Test CA, CN=Test Intermediate',
    issuer: root.subject,
    notBefore,
    notAfter,
    signingAlgorithm: alg,
    publicKey: midKeys.publicKey,
    signingKey: rootKeys.privateKey,
    extensions: ca,
  });
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: '00ff0a',
    subject,
    issuer: mid.subject,
    notBefore,
    notAfter,
    signingAlgorithm: alg,
    publicKey: leafKeys.publicKey,
    signingKey: midKeys.privateKey,
    extensions: [
      new x509.SubjectAlternativeNameExtension(
        domains.map((value) => ({ type: 'dns' as const, value })),
      ),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey));
  const key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
    .export({ type: 'pkcs8', format: 'pem' })
    .toString();
  const pem = (c: x509.X509Certificate) => c.toString('pem') + '\n';
  return { cert: pem(leaf), key, chain: pem(mid), root: pem(root) };
}

describe('fake Cattle API', () => {
  let fc: FakeCattle;
  beforeEach(async () => {
    fc = await startFakeCattle();
  });
  afterEach(async () => {
    await fc.close();
  });

  describe('reaching the API', () => {
    it('listens on loopback and hands out a /v1 CATTLE_URL and keys', () => {
      assert.match(fc.url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      assert.ok(fc.accessKey && fc.secretKey);
      assert.equal(fc.projectId, '1a5');
    });

    it('answers 401 with an error body without credentials or with wrong ones', async () => {
      const none = await call(fc, 'GET', '/services', undefined, { auth: null });
      assertError(none, 401, 'Unauthorized');
      assert.ok(none.headers.get('x-api-schemas'));
      assertError(
        await call(fc, 'GET', '/services', undefined, { auth: basic(fc.accessKey, 'nope') }),
        401,
        'Unauthorized',
      );
      assertError(
        await call(fc, 'GET', '/services', undefined, { auth: basic('nope', fc.secretKey) }),
        401,
        'Unauthorized',
      );
      assertError(
        await call(fc, 'GET', '/services', undefined, { auth: 'Bearer x' }),
        401,
        'Unauthorized',
      );
      assert.equal((await call(fc, 'GET', '/services')).status, 200);
    });

    it('serves the API root with links and the project list, with X-API-Schemas everywhere', async () => {
      const root = await call(fc, 'GET', fc.url.replace(/\/v1$/, '/v2-beta'));
      assert.equal(root.status, 200);
      const links = root.body.links as Record<string, string>;
      for (const k of ['projects', 'certificates', 'services', 'loadBalancerServices']) {
        assert.ok(links[k]?.endsWith(`/v2-beta/${k}`), k);
      }
      assert.equal(
        root.headers.get('x-api-schemas'),
        fc.url.replace(/\/v1$/, '/v2-beta') + '/schemas',
      );
      const projects = await call(fc, 'GET', '/projects');
      assert.equal(projects.body.type, 'collection');
      assert.equal(data(projects)[0]?.id, '1a5');
      assert.equal(data(projects)[0]?.type, 'project');
      assert.equal((await call(fc, 'GET', '/projects/1a5')).body.id, '1a5');
      assertError(await call(fc, 'GET', '/projects/1a9/services'), 404, 'NotFound');
      assertError(await call(fc, 'GET', '/nothing'), 404, 'NotFound');
    });

    it('serves /v1 and /v2-beta, top-level and project-scoped, identically', async () => {
      fc.addService({ name: 'web', labels: { a: 'b' } });
      const v1 = await call(fc, 'GET', `${fc.url}/services`);
      const v2 = await call(fc, 'GET', '/services');
      const scoped = await call(fc, 'GET', `/projects/${fc.projectId}/services`);
      assert.deepEqual(names(v1), ['web']);
      assert.deepEqual(names(v2), ['web']);
      assert.deepEqual(names(scoped), ['web']);
      assert.ok(v1.headers.get('x-api-schemas')?.endsWith('/v1/schemas'));
      const id = data(v2)[0]?.id as string;
      assert.equal((await call(fc, 'GET', `${fc.url}/services/${id}`)).body.name, 'web');
    });
  });

  describe('collections', () => {
    it('pages 250 services by 100 with m<offset> markers, total null, next null at the end', async () => {
      for (let i = 0; i < 250; i++) fc.addService({ name: `svc-${i}` });
      const seen: string[] = [];
      const markers: (string | null)[] = [];
      let next: string | null = `${fc.url}/services`;
      let pages = 0;
      while (next) {
        const r = await call(fc, 'GET', next);
        assert.equal(r.body.type, 'collection');
        assert.equal(r.body.resourceType, 'service');
        assert.deepEqual(Object.keys(r.body).sort(), [
          'actions',
          'createTypes',
          'data',
          'filters',
          'links',
          'pagination',
          'resourceType',
          'sort',
          'type',
        ]);
        const p = pagination(r);
        assert.equal(p.limit, 100);
        assert.equal(p.total, null);
        assert.equal(p.first, null);
        assert.equal(p.previous, null);
        assert.equal(p.partial, p.next !== null);
        markers.push(new URL(next).searchParams.get('marker'));
        seen.push(...(names(r) as string[]));
        next = p.next as string | null;
        pages++;
      }
      assert.equal(pages, 3);
      assert.deepEqual(markers, [null, 'm100', 'm200']);
      assert.equal(seen.length, 250);
      assert.equal(new Set(seen).size, 250);

      const all = await call(fc, 'GET', '/services?limit=1000');
      assert.equal(data(all).length, 250);
      assert.equal(pagination(all).next, null);
      assert.equal(pagination(all).limit, 1000);
      assert.equal(pagination(await call(fc, 'GET', '/services?limit=5000')).limit, 1000);
    });

    it('keeps the query (filters, limit) in pagination.next', async () => {
      for (let i = 0; i < 5; i++) fc.addService({ name: `a-${i}` });
      fc.addService({ name: 'b' });
      const r = await call(fc, 'GET', '/services?name_prefix=a-&limit=2');
      const next = new URL(pagination(r).next as string);
      assert.equal(next.searchParams.get('name_prefix'), 'a-');
      assert.equal(next.searchParams.get('limit'), '2');
      assert.equal(next.searchParams.get('marker'), 'm2');
    });

    it('honours a smaller default page size', async () => {
      const small = await startFakeCattle({ pageLimitDefault: 2 });
      try {
        for (let i = 0; i < 3; i++) small.addService({ name: `s${i}` });
        const r = await call(small, 'GET', '/services');
        assert.equal(data(r).length, 2);
        assert.ok(pagination(r).next);
      } finally {
        await small.close();
      }
    });

    it('filters with modifiers, ANDed, names case-insensitively, ignoring unknown filters', async () => {
      fc.addService({ name: 'Web-One', state: 'active' });
      fc.addService({ name: 'web-two', state: 'inactive' });
      fc.addService({ name: 'db', state: 'active' });
      const q = async (query: string) => names(await call(fc, 'GET', `/services?${query}`));
      assert.deepEqual(await q('name=WEB-ONE'), ['Web-One']);
      assert.deepEqual(await q('name_eq=web-one'), ['Web-One']);
      assert.deepEqual(await q('name_ne=db'), ['Web-One', 'web-two']);
      assert.deepEqual(await q('name_prefix=WEB'), ['Web-One', 'web-two']);
      assert.deepEqual(await q('name_like=%25b-t%25'), ['web-two']);
      assert.deepEqual(await q('name_notlike=web%25'), ['db']);
      assert.deepEqual(await q('name_prefix=web&state=active'), ['Web-One']);
      assert.deepEqual(await q('name_gt=v'), ['Web-One', 'web-two']);
      assert.deepEqual(await q('name_lte=db'), ['db']);
      assert.deepEqual(await q('removed_null=true'), ['Web-One', 'web-two', 'db']);
      // Doc: unknown filters are silently ignored and return everything.
      assert.deepEqual(await q('CN=nothing'), ['Web-One', 'web-two', 'db']);
      assert.deepEqual(await q('name_bogus=x'), ['Web-One', 'web-two', 'db']);
      const r = await call(fc, 'GET', '/services?name=db');
      assert.deepEqual((r.body.filters as Json).name, [{ modifier: 'eq', value: 'db' }]);
      assert.equal((r.body.filters as Json).state, null);
      assert.equal(r.body.sort, null);
    });

    it('hides removed services unless _removed, and keeps them readable by id', async () => {
      fc.addService({ name: 'keep' });
      const gone = fc.addService({ name: 'gone' });
      fc.removeService(gone.id);
      assert.deepEqual(names(await call(fc, 'GET', '/services')), ['keep']);
      assert.deepEqual(names(await call(fc, 'GET', '/services?_removed=true')), ['keep', 'gone']);
      assert.deepEqual(names(await call(fc, 'GET', '/services?_removed&removed_null=true')), [
        'keep',
      ]);
      assert.deepEqual(names(await call(fc, 'GET', '/services?_removed&removed_notnull=1')), [
        'gone',
      ]);
      const byId = await call(fc, 'GET', `/services/${gone.id}`);
      assert.equal(byId.status, 200);
      assert.equal(byId.body.state, 'removed');
      assert.ok(typeof byId.body.removed === 'string');
      assertError(await call(fc, 'GET', '/services/1s999'), 404, 'NotFound');
    });
  });

  describe('services and load balancers', () => {
    it('renders labels, secondary labels, state and stack; test controls change them', async () => {
      const s = fc.addService({
        name: 'web',
        labels: { 'com.danieldent.rancher-lets-encrypt.hosts': 'a.example.com' },
        secondaryLabels: [{ side: 'car' }],
      });
      assert.match(s.id, /^1s\d+$/);
      fc.setLabels(s.id, { x: 'y' });
      fc.setState(s.id, 'inactive');
      const r = await call(fc, 'GET', `/services/${s.id}`);
      assert.equal(r.body.type, 'service');
      assert.equal(r.body.state, 'inactive');
      assert.equal(typeof r.body.stackId, 'string');
      assert.deepEqual(r.body.launchConfig, { labels: { x: 'y' } });
      assert.deepEqual(r.body.secondaryLaunchConfigs, [{ labels: { side: 'car' } }]);
      assert.throws(() => fc.setLabels('1s999', {}));
    });

    it('lists balancers under loadBalancerServices and records their update action', async () => {
      fc.addService({ name: 'web' });
      const lb = fc.addService({
        name: 'lb',
        kind: 'loadBalancerService',
        lbConfig: { defaultCertificateId: '1c1', certificateIds: ['1c2'] },
      });
      assert.deepEqual(names(await call(fc, 'GET', '/services')), ['web', 'lb']);
      const lbs = await call(fc, 'GET', '/loadBalancerServices');
      assert.equal(lbs.body.resourceType, 'loadBalancerService');
      assert.deepEqual(names(lbs), ['lb']);
      const got = data(lbs)[0] as CattleObject;
      assert.equal(got.type, 'loadBalancerService');
      assert.deepEqual(got.lbConfig, {
        type: 'lbConfig',
        defaultCertificateId: '1c1',
        certificateIds: ['1c2'],
      });
      const update = (got.actions as Record<string, string>).update as string;
      assert.ok(update.endsWith(`/loadBalancerServices/${lb.id}/?action=update`), update);

      const r = await call(fc, 'POST', update, {});
      assert.equal(r.status, 200);
      assert.equal(r.body.id, lb.id);
      assert.deepEqual(fc.lbUpdateCalls, [lb.id]);

      const web = data(await call(fc, 'GET', '/services?name=web'))[0] as CattleObject;
      assertError(
        await call(fc, 'POST', `/services/${web.id}?action=update`, {}),
        422,
        'ActionNotAvailable',
      );
      assertError(await call(fc, 'GET', `/loadBalancerServices/${web.id}`), 404, 'NotFound');
      assert.deepEqual(fc.lbUpdateCalls, [lb.id]);
    });
  });

  describe('certificates', () => {
    it('creates a certificate and computes the read-only fields from it', async () => {
      const clock = new FixedClock('2026-09-25T18:53:38Z'); // +90 days: the doc's example date
      const b = await new SelfSignedIssuer(clock).issue(
        { name: 'a.example.com', domains: ['a.example.com', 'www.a.example.com'], source: 't' },
        'ecdsa-p256',
      );
      const r = await call(fc, 'POST', `/projects/${fc.projectId}/certificates`, {
        type: 'certificate',
        name: 'a.example.com',
        cert: b.cert,
        key: b.privkey,
        description: 'managed',
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const c = r.body;
      const leaf = new X509Certificate(b.cert);
      assert.match(c.id as string, /^1c\d+$/);
      assert.equal(c.type, 'certificate');
      assert.equal(c.state, 'active');
      assert.equal(c.transitioning, 'no');
      assert.equal(c.transitioningMessage, null);
      assert.equal(c.removed, null);
      assert.equal(c.description, 'managed');
      assert.equal(c.key, b.privkey, 'the create response carries the key');
      assert.equal(c.CN, 'a.example.com');
      assert.deepEqual(c.subjectAlternativeNames, ['a.example.com', 'www.a.example.com']);
      assert.equal(c.expiresAt, 'Thu Dec 24 18:53:38 UTC 2026');
      assert.equal(c.issuedAt, 'Fri Sep 25 17:53:38 UTC 2026');
      assert.equal(c.serialNumber, BigInt('0x' + leaf.serialNumber).toString());
      assert.match(c.serialNumber as string, /^\d+$/);
      assert.equal(c.certFingerprint, leaf.fingerprint.replace(/:/g, '').toLowerCase());
      // RFC 2253 order (as Java and `openssl -nameopt RFC2253` print it): the
      // placeholder encodes CN before O, so O comes first here.
      assert.equal(c.issuer, 'O=acme-sidecar placeholder,CN=a.example.com');
      assert.equal(c.algorithm, 'SHA256WITHECDSA');
      assert.equal(c.keySize, null);
      assert.equal(c.version, '3');
      assert.ok(!isNaN(Date.parse(c.created as string)));
      assert.equal(typeof c.createdTS, 'number');
      assert.deepEqual(c.actions, {});
      assert.ok(
        (c.links as Json).self === `${fc.url.replace(/\/v1$/, '/v2-beta')}/certificates/${c.id}`,
      );

      const got = await call(fc, 'GET', (c.links as Record<string, string>).self as string);
      assert.equal(got.status, 200);
      assert.ok(!('key' in got.body) || got.body.key === null, 'GET never returns the key');
      assert.equal(got.body.serialNumber, c.serialNumber);
      const list = await call(fc, 'GET', '/certificates?name=A.EXAMPLE.COM');
      assert.deepEqual(names(list), ['a.example.com']);
      assert.ok(!('key' in (data(list)[0] as Json)));
      assert.equal(
        fc.certificates()[0]?.key,
        b.privkey,
        'certificates() exposes keys for assertions',
      );
    });

    it('reports RSA key sizes and signature algorithms', async () => {
      const b = await selfSigned(['rsa.example.com'], 'rsa-2048');
      const c = fc.addCertificate({ name: 'rsa', cert: b.cert, key: b.privkey });
      assert.equal(c.keySize, 2048);
      assert.equal(c.algorithm, 'SHA256WITHRSA');
    });

    it('accepts the intermediates as certChain and reports the issuer DN', async () => {
      const b = await caIssued(['b.example.com']);
      const r = await call(fc, 'POST', '/certificates', {
        name: 'b',
        cert: b.cert,
        key: b.key,
        certChain: b.chain,
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.issuer, 'CN=Test Intermediate,O=Test CA,C=US');
      assert.equal(r.body.serialNumber, String(0xff0a));
      assert.equal(r.body.certChain, b.chain);
    });

    it('takes a leaf with an empty subject (the tlsserver and shortlived profiles) and reports CN null', async () => {
      const b = await caIssued(['e.example.com'], '');
      assert.equal(new X509Certificate(b.cert).subject ?? '', '');
      const r = await call(fc, 'POST', '/certificates', {
        name: 'e',
        cert: b.cert,
        key: b.key,
        certChain: b.chain,
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.CN, null);
      assert.deepEqual(r.body.subjectAlternativeNames, ['e.example.com']);
    });

    it('rejects a chain that does not verify, including one that repeats the leaf', async () => {
      const b = await caIssued(['c.example.com']);
      const post = (certChain: string) =>
        call(fc, 'POST', '/certificates', { name: 'c', cert: b.cert, key: b.key, certChain });
      assertError(await post(b.cert + b.chain), 422, 'InvalidFormat', 'certChain');
      assertError(await post(b.root), 422, 'InvalidFormat', 'certChain');
      assertError(await post('garbage'), 422, 'InvalidFormat', 'certChain');
      assertError(await post(b.chain + b.cert), 422, 'InvalidFormat', 'certChain');
      assert.equal((await post(b.chain + b.root)).status, 201);
    });

    it('answers 422 MissingRequired, InvalidFormat and 400 InvalidBodyContent', async () => {
      const b = await selfSigned(['d.example.com']);
      const other = await selfSigned(['d.example.com']);
      const post = (body: unknown) => call(fc, 'POST', '/certificates', body);
      assertError(await post({ cert: b.cert, key: b.privkey }), 422, 'MissingRequired', 'name');
      assertError(await post({ name: 'd', key: b.privkey }), 422, 'MissingRequired', 'cert');
      assertError(await post({ name: 'd', cert: b.cert }), 422, 'MissingRequired', 'key');
      assertError(
        await post({ name: 'd', cert: 'not a cert', key: b.privkey }),
        422,
        'InvalidFormat',
        'cert',
      );
      assertError(
        await post({ name: 'd', cert: b.cert, key: other.privkey }),
        422,
        'InvalidFormat',
        'key',
      );
      assertError(
        await post({ name: 'd', cert: b.cert, key: 'not a key' }),
        422,
        'InvalidFormat',
        'key',
      );
      assertError(await post('{"name": '), 400, 'InvalidBodyContent');
      assert.equal(fc.certificates().length, 0);
      assert.throws(
        () => fc.addCertificate({ name: 'd', cert: b.cert, key: other.privkey }),
        (e: unknown) =>
          e instanceof CattleApiError && e.code === 'InvalidFormat' && e.fieldName === 'key',
      );
    });

    it('answers 422 NotUnique for a name that differs only in case', async () => {
      const b = await selfSigned(['e.example.com']);
      fc.addCertificate({ name: 'e.example.com', cert: b.cert, key: b.privkey });
      const dup = await call(fc, 'POST', '/certificates', {
        name: 'E.Example.COM',
        cert: b.cert,
        key: b.privkey,
      });
      assertError(dup, 422, 'NotUnique', 'name');
    });

    it('updates in place with PUT (same id), then transitions yes -> no as it is polled', async () => {
      const first = await selfSigned(['f.example.com']);
      const second = await selfSigned(['f.example.com', 'g.example.com']);
      const created = fc.addCertificate({ name: 'f', cert: first.cert, key: first.privkey });
      const path = `/projects/${fc.projectId}/certificates/${created.id}`;
      assertError(
        await call(fc, 'PUT', path, { key: second.privkey }),
        422,
        'MissingRequired',
        'cert',
      );
      // The stored key does not match the new cert.
      assertError(await call(fc, 'PUT', path, { cert: second.cert }), 422, 'InvalidFormat', 'key');
      assertError(
        await call(fc, 'PUT', path, { cert: second.cert, key: first.privkey }),
        422,
        'InvalidFormat',
        'key',
      );

      const put = await call(fc, 'PUT', path, { cert: second.cert, key: second.privkey });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      assert.equal(put.body.id, created.id);
      assert.ok(!('key' in put.body), 'PUT never returns the key');
      assert.equal(put.body.transitioning, 'yes');
      assert.deepEqual(put.body.subjectAlternativeNames, ['f.example.com', 'g.example.com']);
      assert.notEqual(put.body.serialNumber, created.serialNumber);

      const self = (put.body.links as Record<string, string>).self as string;
      const polls: unknown[] = [];
      for (let i = 0; i < 4; i++) polls.push((await call(fc, 'GET', self)).body.transitioning);
      assert.deepEqual(polls, ['yes', 'yes', 'no', 'no']);
      const after = await call(fc, 'GET', self);
      assert.equal(after.body.state, 'active');
      assert.equal(
        after.body.serialNumber,
        BigInt('0x' + new X509Certificate(second.cert).serialNumber).toString(),
      );
      assert.equal(fc.certificates().length, 1);
      assert.equal(fc.certificates()[0]?.key, second.privkey);
      assertError(
        await call(fc, 'PUT', '/certificates/1c999', { cert: second.cert }),
        404,
        'NotFound',
      );
    });

    it('refuses to delete a certificate a balancer uses; others are removed but readable', async () => {
      const b = await selfSigned(['h.example.com']);
      const used = fc.addCertificate({ name: 'used', cert: b.cert, key: b.privkey });
      const free = fc.addCertificate({ name: 'free', cert: b.cert, key: b.privkey });
      fc.addService({
        name: 'lb',
        kind: 'loadBalancerService',
        lbConfig: { defaultCertificateId: used.id },
      });
      const refused = await call(fc, 'DELETE', `/certificates/${used.id}`);
      assertError(refused, 405, 'InvalidAction');
      assert.match(refused.body.message as string, /in use by load balancer services: lb/);
      assert.equal((await call(fc, 'DELETE', `/certificates/${free.id}`)).status, 200);
      assert.deepEqual(names(await call(fc, 'GET', '/certificates')), ['used']);
      assert.deepEqual(names(await call(fc, 'GET', '/certificates?_removed')), ['used', 'free']);
      assert.equal((await call(fc, 'GET', `/certificates/${free.id}`)).body.state, 'removed');
      assert.equal(fc.certificates().length, 2);
      // The name is free again once the holder is removed.
      assert.equal(fc.addCertificate({ name: 'FREE', cert: b.cert, key: b.privkey }).name, 'FREE');
      assertError(await call(fc, 'GET', '/certificates/1c999'), 404, 'NotFound');
    });

    it('ignores unknown certificate filters such as CN', async () => {
      const b = await selfSigned(['i.example.com']);
      fc.addCertificate({ name: 'i1', cert: b.cert, key: b.privkey });
      fc.addCertificate({ name: 'i2', cert: b.cert, key: b.privkey });
      assert.deepEqual(names(await call(fc, 'GET', '/certificates?CN=nobody')), ['i1', 'i2']);
    });
  });

  describe('test controls', () => {
    it('logs every request with its status', async () => {
      await call(fc, 'GET', '/services?limit=3');
      await call(fc, 'POST', '/certificates', '{');
      assert.deepEqual(
        fc.requests.map(({ method, path, query, status }) => ({ method, path, query, status })),
        [
          { method: 'GET', path: '/v2-beta/services', query: 'limit=3', status: 200 },
          { method: 'POST', path: '/v2-beta/certificates', query: '', status: 400 },
        ],
      );
    });

    it('injects a fault for the next matching requests only', async () => {
      fc.fail({ method: 'GET', pathIncludes: '/services' }, { status: 500 });
      const failed = await call(fc, 'GET', '/services');
      assert.equal(failed.status, 500);
      assert.equal(failed.body.type, 'error');
      assert.equal((await call(fc, 'GET', '/services')).status, 200);
      fc.fail({ pathIncludes: 'action=update', times: 2 }, { status: 503, body: '{"oops":1}' });
      const lb = fc.addService({ name: 'lb', kind: 'loadBalancerService' });
      const update = (lb.actions as Record<string, string>).update as string;
      assert.deepEqual((await call(fc, 'POST', update, {})).body, { oops: 1 });
      assert.equal((await call(fc, 'POST', update, {})).status, 503);
      assert.equal((await call(fc, 'POST', update, {})).status, 200);
      assert.deepEqual(fc.lbUpdateCalls, [lb.id]);
      assert.deepEqual(
        fc.requests.map((r) => r.status),
        [500, 200, 503, 503, 200],
      );
    });

    it('delays responses so client timeouts can be exercised', async () => {
      fc.fail({ pathIncludes: '/certificates' }, { status: 200, body: '{}', delayMs: 2000 });
      const t0 = Date.now();
      await assert.rejects(
        call(fc, 'GET', '/certificates', undefined, { signal: AbortSignal.timeout(100) }),
      );
      assert.ok(Date.now() - t0 < 1500);
      fc.fail({ pathIncludes: '/services' }, { delayMs: 150 });
      const t1 = Date.now();
      const slow = await call(fc, 'GET', '/services');
      assert.equal(slow.status, 200);
      assert.equal(slow.body.type, 'collection');
      assert.ok(Date.now() - t1 >= 140);
    });
  });
});
