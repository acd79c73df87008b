import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { freePort } from '../../devenv/proc.js';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { systemClock } from '../../src/lifecycle/clock.js';
import {
  DENT_LABEL,
  DOMAINS_LABEL,
  OWNER_MARKER,
} from '../../src/platform/rancher/rancher-platform.js';
import { chainVerifiesTo, keyMatches } from '../../src/util/x509.js';
import { startFakeCattle, type CattleObject, type FakeCattle } from '../../devenv/fake-cattle.js';
import {
  processOutput,
  collect,
  registerSecret,
  runSidecar,
  sidecarEnv,
  startSidecar,
  type RunResult,
} from '../support/sidecar.js';
import { waitFor } from '../support/wait.js';

function explain(r: RunResult): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr.slice(-4000)}`;
}

const orders = (r: RunResult) =>
  r.logs
    .filter((l) => l.message === 'ordering certificate')
    .map((l) => `${String(l.cert)}/${String(l.phase)}`);

function byName(cattle: FakeCattle): Map<string, CattleObject> {
  return new Map(
    cattle
      .certificates()
      .filter((c) => !c.removed)
      .map((c) => [String(c.name), c]),
  );
}

/** The pushed certificate verifies against `root`, its chain is intermediates only, and its key matches. */
function assertPushed(c: CattleObject | undefined, root: string, name: string): void {
  assert.ok(c, `${name} is on the platform`);
  const cert = String(c.cert);
  const chain = String(c.certChain);
  assert.ok(chainVerifiesTo(cert + chain, root), `${name} verifies against the CA root`);
  assert.ok(!chain.includes(cert.trim()), 'certChain holds intermediates only');
  assert.ok(keyMatches(cert, String(c.key)), `${name}: key matches`);
  assert.match(String(c.description), new RegExp(OWNER_MARKER));
}

describe('e2e: Rancher platform (fake Cattle API, real Pebble and nginx)', function () {
  this.timeout(180_000);
  const ACCESS_KEY = 'AK-e2e';
  const SECRET_KEY = 'SK-e2e-secret-9c1d';
  let env: DevEnv;
  // Each test gets a Cattle API and a STATE_DIR of its own (beforeEach) and
  // builds the state it needs itself: none depends on another having run.
  let cattle: FakeCattle;
  let stateDir: string;
  let vars: (extra?: Record<string, string>) => Record<string, string>;

  before(async () => {
    env = await startDevEnv();
    registerSecret(SECRET_KEY, { basicAuthUser: ACCESS_KEY });
  });
  after(async () => {
    await env?.stop();
  });
  beforeEach(async () => {
    cattle = await startFakeCattle({ accessKey: ACCESS_KEY, secretKey: SECRET_KEY });
    stateDir = await mkdtemp(path.join(env.dir, 'state-'));
    vars = (extra = {}) =>
      sidecarEnv(env, {
        PLATFORM: 'rancher',
        CATTLE_URL: cattle.url,
        CATTLE_ACCESS_KEY: cattle.accessKey,
        CATTLE_SECRET_KEY: cattle.secretKey,
        STATE_DIR: stateDir,
        ...extra,
      });
  });
  afterEach(async () => {
    await cattle?.close();
  });

  describe('labelled services, a removed one, a wildcard and a foreign certificate', () => {
    let web: CattleObject;
    let foreignSerial: unknown;
    beforeEach(async () => {
      web = cattle.addService({ name: 'web', labels: { [DENT_LABEL]: 'a.demo.test,b.demo.test' } });
      cattle.addService({
        name: 'shop',
        labels: { [DOMAINS_LABEL]: 'shop=shop.demo.test+cdn.demo.test' },
      });
      cattle.addService({
        name: 'old',
        labels: { [DENT_LABEL]: 'gone.demo.test' },
        state: 'removed',
      });
      cattle.addService({ name: 'bad', labels: { [DENT_LABEL]: 'a*.demo.test' } });
      // A certificate someone else created, with a name a label asks for.
      const other = await new SelfSignedIssuer(systemClock).issue(
        { name: 'foreign.demo.test', domains: ['foreign.demo.test'], source: 't' },
        'ecdsa-p256',
      );
      const foreign = cattle.addCertificate({
        name: 'foreign.demo.test',
        cert: other.cert,
        key: other.privkey,
        description: 'uploaded by hand',
      });
      foreignSerial = foreign.serialNumber;
      cattle.addService({ name: 'legacy', labels: { [DENT_LABEL]: 'foreign.demo.test' } });
    });

    /** A pass from staging; exit 1 for the foreign certificate and the wildcard. */
    async function staged(): Promise<void> {
      const r = await runSidecar(['once'], vars());
      assert.equal(r.code, 1, explain(r));
    }
    /** Staged, then a pass with STAGING=false: every certificate from production on the platform. */
    async function promoted(): Promise<void> {
      await staged();
      const r = await runSidecar(['once'], vars({ STAGING: 'false' }));
      assert.equal(r.code, 1, explain(r));
    }

    it('issues a certificate for every labelled service and pushes it to Cattle; reports the bad and the foreign ones', async () => {
      const r = await runSidecar(['once'], vars());
      assert.equal(r.code, 1, explain(r)); // the foreign certificate and the wildcard are reported
      const certs = byName(cattle);
      const root = await env.staging.getRootPem();
      for (const name of ['a.demo.test', 'b.demo.test', 'shop'])
        assertPushed(certs.get(name), root, name);
      const sans = (certs.get('shop')?.subjectAlternativeNames as string[] | undefined) ?? [];
      assert.deepEqual([...sans].sort(), ['cdn.demo.test', 'shop.demo.test']);
      assert.equal(certs.has('gone.demo.test'), false, 'removed services do not count');
      assert.equal(
        certs.get('foreign.demo.test')?.serialNumber,
        foreignSerial,
        'foreign left alone',
      );
      assert.match(r.stdout, /FAIL foreign\.demo\.test .*PLATFORM_CONFLICT/);
      assert.match(r.stdout, /SKIP "a\*\.demo\.test".*wildcard/);
      assert.match(r.stdout, /ok {3}a\.demo\.test/);
      assert.ok(!cattle.requests.some((q) => q.method === 'DELETE'), 'never deletes');
    });

    it('with STAGING=false updates each certificate in place and asks the load balancer using it to reload', async () => {
      await staged();
      const before = byName(cattle);
      const aId = String(before.get('a.demo.test')?.id);
      const lb = cattle.addService({
        name: 'lb',
        kind: 'loadBalancerService',
        lbConfig: { defaultCertificateId: aId },
      });
      const r = await runSidecar(['once'], vars({ STAGING: 'false' }));
      assert.equal(r.code, 1, explain(r)); // still the foreign conflict
      const after = byName(cattle);
      const root = await env.production.getRootPem();
      for (const name of ['a.demo.test', 'b.demo.test', 'shop']) {
        assertPushed(after.get(name), root, name);
        assert.equal(after.get(name)?.id, before.get(name)?.id, `${name} updated in place`);
      }
      assert.ok(cattle.lbUpdateCalls.includes(lb.id), 'the load balancer was asked to reload');
    });

    it('a second pass with everything valid makes no ACME order and no platform write', async () => {
      await promoted();
      const writes = cattle.requests.filter((q) => q.method !== 'GET').length;
      const r = await runSidecar(['once'], vars({ STAGING: 'false' }));
      assert.deepEqual(orders(r), []);
      assert.equal(cattle.requests.filter((q) => q.method !== 'GET').length, writes);
    });

    it('a changed label issues the new certificate; a removed hostname stops renewing and is left in place', async () => {
      await promoted();
      cattle.setLabels(web.id, { [DENT_LABEL]: 'a.demo.test,c.demo.test' });
      const r = await runSidecar(['once'], vars({ STAGING: 'false' }));
      assert.deepEqual(orders(r).sort(), ['c.demo.test/production', 'c.demo.test/staging']);
      const certs = byName(cattle);
      assertPushed(certs.get('c.demo.test'), await env.production.getRootPem(), 'c.demo.test');
      assert.ok(certs.has('b.demo.test'), 'b is left on the platform');
      assert.doesNotMatch(r.stdout, /b\.demo\.test/, 'b is no longer managed');
    });

    it('when the local volume is lost, issues a new certificate (Cattle never returns keys) and updates in place', async () => {
      await promoted();
      const before = byName(cattle).get('a.demo.test');
      await rm(path.join(stateDir, 'certs', 'a.demo.test'), { recursive: true, force: true });
      await rm(path.join(stateDir, 'live', 'a.demo.test'), { force: true });
      const r = await runSidecar(['once'], vars({ STAGING: 'false' }));
      assert.ok(
        r.logs.some((l) => l.reason === 'LocalLost' && l.cert === 'a.demo.test'),
        explain(r),
      );
      const after = byName(cattle).get('a.demo.test');
      assert.equal(after?.id, before?.id);
      assert.notEqual(after?.serialNumber, before?.serialNumber);
      assertPushed(after, await env.production.getRootPem(), 'a.demo.test');
      const served = new X509Certificate(String(after?.cert));
      assert.ok(served.checkHost('a.demo.test'));
    });

    it('never printed the Cattle secret key', async () => {
      await staged();
      assert.ok(processOutput.length > 0);
      const all = processOutput.join('\n');
      const at = all.indexOf(cattle.secretKey);
      assert.ok(at < 0, `secret printed: ...${all.slice(Math.max(0, at - 300), at + 100)}`);
      const basic = Buffer.from(`${cattle.accessKey}:${cattle.secretKey}`).toString('base64');
      assert.ok(!processOutput.join('\n').includes(basic));
    });
  });

  it('ALLOWED_DOMAINS: a DOMAINS entry outside it stops startup (exit 2), naming the entry; check-config warns when it is empty', async () => {
    const bad = await runSidecar(
      ['once'],
      vars({ DOMAINS: 'ok.demo.test,pay.example.org', ALLOWED_DOMAINS: 'demo.test' }),
    );
    assert.equal(bad.code, 2, explain(bad));
    assert.match(
      bad.stderr,
      /DOMAINS="pay\.example\.org": expected hostnames under ALLOWED_DOMAINS="demo\.test", but pay\.example\.org is outside it/,
    );
    assert.deepEqual(cattle.certificates(), [], 'nothing was done');
    const check = await runSidecar(['check-config'], vars());
    assert.match(
      check.stdout,
      /^WARN ALLOWED_DOMAINS: empty: with PLATFORM=rancher/m,
      check.stdout,
    );
    const set = await runSidecar(['check-config'], vars({ ALLOWED_DOMAINS: 'demo.test' }));
    assert.doesNotMatch(set.stdout, /ALLOWED_DOMAINS/, set.stdout);
  });

  it('ALLOWED_DOMAINS: a label for a domain outside it is refused and named, while an allowed one is issued', async () => {
    const outsider = cattle.addService({
      name: 'outsider',
      labels: { [DENT_LABEL]: 'pay.example.org' },
    });
    cattle.addService({ name: 'inside', labels: { [DENT_LABEL]: 'inside.demo.test' } });
    const r = await runSidecar(['once'], vars({ ALLOWED_DOMAINS: 'demo.test' }));
    assert.equal(r.code, 1, explain(r)); // the refused label is reported
    const certs = byName(cattle);
    assertPushed(certs.get('inside.demo.test'), await env.staging.getRootPem(), 'inside');
    assert.equal(certs.has('pay.example.org'), false, 'nothing pushed for the refused label');
    assert.deepEqual(orders(r), ['inside.demo.test/staging']);
    const source = `rancher:service/outsider(${outsider.id}):${DENT_LABEL}`;
    assert.match(
      r.stdout,
      new RegExp(
        `SKIP "pay\\.example\\.org=pay\\.example\\.org" \\(${source.replace(/[().]/g, '\\$&')}\\): not-allowed: .*pay\\.example\\.org is outside ALLOWED_DOMAINS \\(demo\\.test\\)`,
      ),
      r.stdout,
    );
    assert.ok(
      r.logs.some(
        (l) =>
          l.message === 'hostname skipped' &&
          l.code === 'not-allowed' &&
          l.source === source &&
          String(l.error).includes('pay.example.org'),
      ),
      'the log names the refused hostname and its service',
    );

    // The daemon names it in /status too (issue 14: log, /status and once output).
    const port = await freePort();
    const daemon = startSidecar(
      ['run'],
      vars({ ALLOWED_DOMAINS: 'demo.test', STATUS_ADDRESS: `127.0.0.1:${port}` }),
    );
    const done = collect(daemon, 120_000);
    type Problem = { source: string; value: string; code: string; message: string };
    let problems: Problem[];
    try {
      problems = await waitFor(
        async () => {
          const s = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as {
            problems: Problem[];
          };
          return s.problems.length > 0 ? s.problems : undefined;
        },
        { what: '/status to name the refused label', timeoutMs: 60_000, intervalMs: 300 },
      );
    } finally {
      daemon.kill('SIGTERM');
    }
    await done;
    assert.deepEqual(
      problems.map((p) => [p.code, p.source, p.value]),
      [['not-allowed', source, 'pay.example.org=pay.example.org']],
    );
    assert.match(problems[0]?.message ?? '', /pay\.example\.org is outside ALLOWED_DOMAINS/);
  });

  it('a second service claiming the hostname of live/shop under another name is refused and named; shop keeps its certificate, across restarts', async () => {
    // `early` comes first in Cattle's list: without claims, it would win the name.
    const early = cattle.addService({ name: 'early', labels: { [DENT_LABEL]: 'early.demo.test' } });
    cattle.addService({ name: 'shop', labels: { [DOMAINS_LABEL]: 'shop=shop.demo.test' } });
    const first = await runSidecar(['once'], vars());
    assert.equal(first.code, 0, explain(first));
    const liveShop = path.join(stateDir, 'live', 'shop', 'cert.pem');
    const served = await readFile(liveShop, 'utf8');
    const pushed = String(byName(cattle).get('shop')?.cert);

    // Two newcomers: the same hostname under another name, and the same name with another hostname.
    cattle.addService({ name: 'intruder', labels: { [DOMAINS_LABEL]: 'intruder=shop.demo.test' } });
    cattle.setLabels(early.id, { [DOMAINS_LABEL]: 'shop=evil.demo.test' });

    // A restarted sidecar (the daemon): refused and named in /status.
    const port = await freePort();
    const daemon = startSidecar(['run'], vars({ STATUS_ADDRESS: `127.0.0.1:${port}` }));
    const done = collect(daemon, 120_000);
    type Status = {
      certificates: { name: string; domains: string[] }[];
      problems: { source: string; value: string; code: string; message: string }[];
    };
    let status: Status | undefined;
    try {
      status = await waitFor(
        async () => {
          const s = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as Status;
          return s.problems.length >= 2 ? s : undefined;
        },
        { what: '/status to name the refused services', timeoutMs: 60_000, intervalMs: 300 },
      );
    } finally {
      daemon.kill('SIGTERM');
    }
    await done;
    const refused = status.problems.map((p) => [p.code, p.source.split('(')[0], p.value]).sort();
    assert.deepEqual(refused, [
      ['claimed', 'rancher:service/early', 'shop=evil.demo.test'],
      ['claimed', 'rancher:service/intruder', 'intruder=shop.demo.test'],
    ]);
    assert.ok(
      status.problems.every((p) => p.message.includes('rancher:service/shop(')),
      'each refusal names the holder',
    );
    assert.deepEqual(
      status.certificates.filter((c) => c.name === 'shop').map((c) => c.domains),
      [['shop.demo.test']],
    );

    // Restarted again (`once`): still refused and named; shop untouched.
    const again = await runSidecar(['once'], vars());
    assert.equal(again.code, 1, explain(again));
    assert.match(
      again.stdout,
      /SKIP "intruder=shop\.demo\.test" \(rancher:service\/intruder\(.*\): claimed: .*hostname shop\.demo\.test belongs to certificate shop/,
    );
    assert.match(
      again.stdout,
      /SKIP "shop=evil\.demo\.test" \(rancher:service\/early\(.*\): claimed: .*certificate shop is held by rancher:service\/shop\(/,
    );
    assert.deepEqual(orders(again), [], 'nothing ordered for the newcomers');
    assert.equal(await readFile(liveShop, 'utf8'), served, 'live/shop serves the same certificate');
    assert.equal(String(byName(cattle).get('shop')?.cert), pushed, 'Cattle holds the same shop');
    assert.equal(byName(cattle).has('intruder'), false);
    assert.equal(
      await readFile(path.join(stateDir, 'live', 'intruder', 'cert.pem'), 'utf8').catch(
        () => 'none',
      ),
      'none',
    );
  });

  it('a failed push keeps the issued certificate and pushes it later, without ordering again', async () => {
    cattle.addService({ name: 'late', labels: { [DENT_LABEL]: 'late.demo.test' } });
    // Every certificate write fails for a while (the platform is down for writes).
    cattle.fail({ method: 'POST', pathIncludes: '/certificates', times: 50 }, { status: 503 });
    const port = await freePort();
    const v = vars({ STAGING: 'false', LOOP_TIME: '1', STATUS_ADDRESS: `127.0.0.1:${port}` });
    const daemon = startSidecar(['run'], v);
    // Longer than both waits below (60 s, then 90 s for the retry about a
    // minute after the failure): a slow first pass must not get the daemon
    // killed before its retry is due.
    const done = collect(daemon, 170_000);
    try {
      // Waits for what it asserts (not any failed push: an earlier line could match).
      const pushFailed = /late\.demo\.test\s+production .*PLATFORM_UNAVAILABLE/;
      let status = '';
      for (const end = Date.now() + 60_000; Date.now() < end;) {
        status = (await runSidecar(['status'], v)).stdout;
        if (pushFailed.test(status)) break;
        await new Promise((r) => setTimeout(r, 300));
      }
      assert.match(status, pushFailed, status);
      assert.equal(byName(cattle).has('late.demo.test'), false);
      // The platform accepts writes again; the daemon's own retry (the first
      // step of the schedule, about a minute) pushes the certificate it has.
      cattle.clearFaults();
      const served = (
        await readFile(path.join(stateDir, 'live', 'late.demo.test', 'cert.pem'), 'utf8')
      ).trim();
      for (const end = Date.now() + 90_000; Date.now() < end;) {
        if (byName(cattle).has('late.demo.test')) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      assertPushed(
        byName(cattle).get('late.demo.test'),
        await env.production.getRootPem(),
        'late.demo.test',
      );
      assert.equal(
        String(byName(cattle).get('late.demo.test')?.cert).trim(),
        served,
        'the same certificate',
      );
    } finally {
      daemon.kill('SIGTERM');
    }
    const r = await done;
    assert.equal(r.code, 0);
    const orders = r.logs.filter(
      (l) => l.message === 'ordering certificate' && l.cert === 'late.demo.test',
    );
    assert.deepEqual(
      orders.map((l) => l.phase),
      ['staging', 'production'],
      'issued once; the failed push did not cost a new order',
    );
  });
});
