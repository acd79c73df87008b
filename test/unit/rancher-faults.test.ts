import assert from 'node:assert/strict';
import nock from 'nock';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { SidecarError } from '../../src/domain/errors.js';
import { systemClock } from '../../src/lifecycle/clock.js';
import { describeBundle } from '../../src/util/x509.js';
import { Discoverer } from '../../src/reconcile/discoverer.js';
import { CattleClient } from '../../src/platform/rancher/cattle-client.js';
import {
  DENT_LABEL,
  DOMAINS_LABEL,
  OWNER_MARKER,
  RancherPlatform,
} from '../../src/platform/rancher/rancher-platform.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { Writable } from 'node:stream';

// nock at the platform-API boundary only: the real server rarely fails on
// demand. Everything else (CA, nginx) is real in the e2e suites.
const ORIGIN = 'http://rancher.test:8080';
const BASE = '/v2-beta';
const ACCESS = 'ACCESSKEY1';
const SECRET = 'sekrit-do-not-log-4f9a';
const BASIC = Buffer.from(`${ACCESS}:${SECRET}`).toString('base64');
const leaks = (text: string) => text.includes(SECRET) || text.includes(BASIC);

function capture(): { log: Logger; text: () => string } {
  let out = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  });
  return { log: createLogger({ stream, level: 'debug' }), text: () => out };
}

function platform(log: Logger, opts: { timeoutMs?: number } = {}) {
  const client = new CattleClient({
    url: `${ORIGIN}/v1`,
    accessKey: ACCESS,
    secretKey: SECRET,
    timeoutMs: opts.timeoutMs ?? 500,
    attempts: 3,
    backoffMs: 5,
    log,
  });
  return new RancherPlatform(client, { domains: async () => '', log, transitionTimeoutMs: 2000 });
}

const collection = (data: unknown[], next: string | null = null) => ({
  type: 'collection',
  data,
  pagination: { next, limit: 100, total: null, partial: next !== null },
});
const svc = (id: string, labels: Record<string, string>, state = 'active') => ({
  id,
  name: `svc-${id}`,
  state,
  launchConfig: { labels },
  secondaryLaunchConfigs: [],
});

/** The happy answers for one discovery: two pages of services, no LBs. */
function servicesOk(scope: nock.Scope) {
  return scope
    .get(`${BASE}/services`)
    .query(true)
    .reply(
      200,
      collection(
        [svc('1s1', { [DENT_LABEL]: 'a.example.com,b.example.com' })],
        `${ORIGIN}${BASE}/services?limit=1000&marker=m1`,
      ),
    )
    .get(`${BASE}/services`)
    .query({ limit: '1000', marker: 'm1' })
    .reply(
      200,
      collection([svc('1s2', { [DOMAINS_LABEL]: 'shop=shop.example.com+cdn.example.com' })]),
    )
    .get(`${BASE}/loadBalancerServices`)
    .query(true)
    .reply(200, collection([]));
}

describe('rancher faults (nock at the Cattle API boundary)', () => {
  before(() => {
    nock.disableNetConnect();
    nock.enableNetConnect(/^(127\.0\.0\.1|localhost)(:\d+)?$/);
  });
  afterEach(() => nock.cleanAll());
  // Take nock out of the process altogether (not "allow every host"): the
  // tests after this file share the process and must neither reach beyond
  // loopback nor go through nock's request interceptor.
  after(() => {
    nock.cleanAll();
    nock.restore();
  });

  async function discoverTwice(fault: (scope: nock.Scope) => void) {
    const { log, text } = capture();
    const d = new Discoverer(platform(log), log);
    servicesOk(nock(ORIGIN));
    const first = await d.discover();
    assert.deepEqual(first.specs.map((s) => s.name).sort(), [
      'a.example.com',
      'b.example.com',
      'shop',
    ]);
    const scope = nock(ORIGIN);
    fault(scope);
    // Services and load balancers are read in parallel; the fault is in services.
    scope.get(`${BASE}/loadBalancerServices`).query(true).optionally().reply(200, collection([]));
    const second = await d.discover();
    return { first, second, logs: text() };
  }

  const faults: { name: string; code: string; fault: (s: nock.Scope) => void }[] = [
    {
      name: 'keeps the last known set when the API answers 500 on every retry',
      code: 'PLATFORM_UNAVAILABLE',
      fault: (s) =>
        s
          .get(`${BASE}/services`)
          .query(true)
          .times(3)
          .reply(500, { type: 'error', status: 500, code: 'ServerError' }),
    },
    {
      name: 'keeps the last known set when the API does not answer in time',
      code: 'PLATFORM_UNAVAILABLE',
      fault: (s) =>
        s.get(`${BASE}/services`).query(true).times(3).delay(3000).reply(200, collection([])),
    },
    {
      name: 'keeps the last known set on truncated JSON',
      code: 'PLATFORM_BAD_RESPONSE',
      fault: (s) =>
        s
          .get(`${BASE}/services`)
          .query(true)
          .times(3)
          .reply(200, '{"type":"collection","data":[{"id":"1s1",'),
    },
    {
      name: 'keeps the last known set on 401 (and does not retry it)',
      code: 'PLATFORM_UNAUTHORIZED',
      fault: (s) =>
        s.get(`${BASE}/services`).query(true).reply(401, {
          type: 'error',
          status: 401,
          code: 'Unauthorized',
          message: 'Unauthorized',
        }),
    },
    {
      name: 'keeps the last known set when a page fails mid-way (never a partial set)',
      code: 'PLATFORM_UNAVAILABLE',
      fault: (s) =>
        s
          .get(`${BASE}/services`)
          .query({ limit: '1000' })
          .reply(
            200,
            collection(
              [svc('1s1', { [DENT_LABEL]: 'a.example.com' })],
              `${ORIGIN}${BASE}/services?limit=1000&marker=m1`,
            ),
          )
          .get(`${BASE}/services`)
          .query({ limit: '1000', marker: 'm1' })
          .times(3)
          .reply(503, 'Service Unavailable'),
    },
    {
      name: 'keeps the last known set when the answer is not a collection',
      code: 'PLATFORM_BAD_RESPONSE',
      fault: (s) => s.get(`${BASE}/services`).query(true).times(3).reply(200, { type: 'error' }),
    },
  ];
  for (const f of faults) {
    it(f.name, async () => {
      const { first, second, logs } = await discoverTwice(f.fault);
      assert.equal(second.error?.code, f.code, JSON.stringify(second.error));
      assert.deepEqual(second.specs, first.specs);
      assert.ok(!leaks(logs), 'the secret key never reaches a log line');
      assert.ok(!leaks(JSON.stringify(second.error)));
    });
  }

  it('scrubs credentials from a library error that quotes the request headers', async () => {
    const { log, text } = capture();
    // No interceptor for loadBalancerServices: nock's "no match" error quotes the Authorization header.
    nock(ORIGIN).get(`${BASE}/services`).query(true).reply(200, collection([]));
    const err = await platform(log)
      .discover()
      .catch((e: unknown) => e);
    assert.ok(err instanceof SidecarError);
    assert.match(err.message, /No match/);
    assert.ok(!leaks(`${err.message}${text()}`), err.message);
  });

  it('reads every page and skips removed services', async () => {
    const { log } = capture();
    nock(ORIGIN)
      .get(`${BASE}/services`)
      .query(true)
      .reply(
        200,
        collection(
          [
            svc('1s1', { [DENT_LABEL]: 'a.example.com' }),
            svc('1s9', { [DENT_LABEL]: 'gone.example.com' }, 'removed'),
          ],
          `${ORIGIN}${BASE}/services?marker=m2`,
        ),
      )
      .get(`${BASE}/services`)
      .query({ marker: 'm2' })
      .reply(200, collection([svc('1s3', { [DENT_LABEL]: 'z.example.com' })]))
      .get(`${BASE}/loadBalancerServices`)
      .query(true)
      .reply(200, collection([]));
    const r = await platform(log).discover();
    assert.deepEqual(r.specs.map((s) => s.name).sort(), ['a.example.com', 'z.example.com']);
  });

  it('refuses to follow a pagination link to another server with our credentials', async () => {
    const { log } = capture();
    nock(ORIGIN)
      .get(`${BASE}/services`)
      .query(true)
      .reply(200, collection([], 'http://evil.test/v2-beta/services?marker=m1'))
      .get(`${BASE}/loadBalancerServices`)
      .query(true)
      .optionally()
      .reply(200, collection([]));
    await assert.rejects(platform(log).discover(), { code: 'PLATFORM_BAD_RESPONSE' });
  });

  it('sends basic auth, and a 401 error names the variables without showing the secret', async () => {
    const { log, text } = capture();
    const scope = nock(ORIGIN)
      .get(`${BASE}/services`)
      .query(true)
      .basicAuth({ user: ACCESS, pass: SECRET })
      .reply(401, { type: 'error', status: 401, code: 'Unauthorized' })
      // The parallel load-balancer read must be answered here, or its
      // retries outlive this test and eat the next test's interceptor.
      .get(`${BASE}/loadBalancerServices`)
      .query(true)
      .optionally()
      .reply(200, collection([]));
    const err = await platform(log)
      .discover()
      .catch((e: unknown) => e);
    assert.ok(err instanceof SidecarError);
    assert.equal(err.code, 'PLATFORM_UNAUTHORIZED');
    assert.match(err.message, /CATTLE_ACCESS_KEY and CATTLE_SECRET_KEY/);
    assert.ok(!leaks(`${err.message}${err.stack}${JSON.stringify(err)}${text()}`));
    assert.ok(scope.isDone());
  });

  describe('push', () => {
    async function stored(name: string) {
      const bundle = await new SelfSignedIssuer(systemClock).issue(
        { name, domains: [name], source: 't' },
        'ecdsa-p256',
      );
      const meta = describeBundle(bundle, {
        name,
        phase: 'production',
        directoryUrl: 'https://ca.test/dir',
        keyType: 'ecdsa-p256',
        issuedAt: new Date(),
      });
      return { meta, bundle };
    }
    const projects = (s: nock.Scope) =>
      s
        .get(`${BASE}/projects`)
        .query(true)
        .reply(200, collection([{ id: '1a5' }]));

    it('retries a failed update and then asks the load balancers that use it to reload', async () => {
      const { log, text } = capture();
      const cert = await stored('a.example.com');
      let putBody: Record<string, unknown> = {};
      const scope = nock(ORIGIN);
      projects(scope);
      scope
        .put(`${BASE}/projects/1a5/certificates/1c7`)
        .reply(502, 'Bad Gateway')
        .put(
          `${BASE}/projects/1a5/certificates/1c7`,
          (b: Record<string, unknown>) => ((putBody = b), true),
        )
        .reply(200, { id: '1c7', type: 'certificate' })
        .get(`${BASE}/certificates/1c7`)
        .reply(200, { id: '1c7', transitioning: 'yes' })
        .get(`${BASE}/certificates/1c7`)
        .reply(200, { id: '1c7', transitioning: 'no' })
        .get(`${BASE}/loadBalancerServices`)
        .query(true)
        .reply(
          200,
          collection([
            {
              id: '1s50',
              state: 'active',
              lbConfig: { certificateIds: ['1c7'] },
              actions: { update: `${ORIGIN}${BASE}/loadBalancerServices/1s50/?action=update` },
            },
            {
              id: '1s51',
              state: 'active',
              lbConfig: { defaultCertificateId: '1c9' },
              actions: { update: `${ORIGIN}${BASE}/loadBalancerServices/1s51/?action=update` },
            },
          ]),
        )
        .post(`${BASE}/loadBalancerServices/1s50/`)
        .query({ action: 'update' })
        .reply(200, {});
      await platform(log, { timeoutMs: 5000 }).push(cert, { id: '1c7', serial: '01', ours: true });
      assert.ok(scope.isDone(), `pending: ${scope.pendingMocks().join(', ')}`);
      assert.equal(putBody.cert, cert.bundle.cert);
      assert.equal(putBody.certChain, cert.bundle.chain);
      assert.match(String(putBody.description), new RegExp(OWNER_MARKER));
      assert.ok(!text().includes('PRIVATE KEY'), 'the key is never logged');
    });

    it('never overwrites a certificate it did not create, and never deletes anything', async () => {
      const { log } = capture();
      const cert = await stored('a.example.com');
      const scope = nock(ORIGIN);
      projects(scope);
      await assert.rejects(
        platform(log, { timeoutMs: 5000 }).push(cert, { id: '1c7', serial: '01', ours: false }),
        {
          code: 'PLATFORM_CONFLICT',
        },
      );
      // Any PUT, POST or DELETE would have been an unmatched request.
      assert.deepEqual(scope.pendingMocks(), []);
    });

    it('takes over a certificate created concurrently only if it is ours', async () => {
      const { log } = capture();
      const cert = await stored('a.example.com');
      const scope = nock(ORIGIN);
      projects(scope);
      scope
        .post(`${BASE}/projects/1a5/certificates`)
        .reply(422, { type: 'error', status: 422, code: 'NotUnique', fieldName: 'name' })
        .get(`${BASE}/certificates`)
        .query(true)
        .reply(
          200,
          collection([
            { id: '1c8', name: 'A.example.com', description: 'someone else', serialNumber: '5' },
          ]),
        );
      await assert.rejects(platform(log, { timeoutMs: 5000 }).push(cert), {
        code: 'PLATFORM_CONFLICT',
      });
      assert.ok(scope.isDone());
    });
  });
});
