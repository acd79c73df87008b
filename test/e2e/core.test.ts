import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { accountPrefix } from '../../src/store/keys.js';
import { startDevEnv, tlsServedCert, type DevEnv } from '../../devenv/index.js';
import { chainVerifiesTo, dnsNames, keyMatches } from '../../src/util/x509.js';
import { runSidecar, sidecarEnv, type RunResult } from '../support/sidecar.js';
import { waitFor } from '../support/wait.js';

async function liveFiles(env: DevEnv, name: string) {
  const dir = path.join(env.certDir, 'live', name);
  const [cert, chain, fullchain, privkey] = await Promise.all(
    ['cert.pem', 'chain.pem', 'fullchain.pem', 'privkey.pem'].map((f) =>
      readFile(path.join(dir, f), 'utf8'),
    ),
  );
  return { cert: cert!, chain: chain!, fullchain: fullchain!, privkey: privkey! };
}

/** The persisted account records of the staging and production CAs. */
async function accounts(env: DevEnv): Promise<string> {
  const files = [env.staging.directoryUrl, env.production.directoryUrl].map((u) =>
    path.join(env.certDir, accountPrefix(u), 'account.json'),
  );
  return (await Promise.all(files.map((f) => readFile(f, 'utf8')))).join(',');
}

function orders(r: RunResult): { phase: unknown; reason: unknown; cert: unknown }[] {
  return r.logs
    .filter((l) => l.message === 'ordering certificate')
    .map((l) => ({ phase: l.phase, reason: l.reason, cert: l.cert }));
}

function explain(r: RunResult): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr.slice(-4000)}`;
}

describe('e2e: core path against real Pebble and nginx', function () {
  this.timeout(180_000);
  let env: DevEnv;
  let stagingRoot: string;
  let productionRoot: string;

  /**
   * Each test builds the state it needs on certificates of its own (a
   * `<tag>` in every hostname), so none depends on another having run
   * first: any one passes alone (`--grep`) or in another order.
   */
  function certs(tag: string) {
    const A = `a.${tag}.demo.test`;
    const MULTI = `multi-${tag}`;
    const MULTI_SANS = [`b.${tag}.demo.test`, `www.b.${tag}.demo.test`] as const;
    return { A, MULTI, MULTI_SANS, DOMAINS: `${A}, ${MULTI}=${MULTI_SANS[1]}+${MULTI_SANS[0]}` };
  }
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const serialOf = async (name: string) =>
    new X509Certificate((await liveFiles(env, name)).cert).serialNumber;

  /** `once` from staging, then `once` with STAGING=false: both runs, each asserted to exit 0. */
  async function promote(domains: string): Promise<{ staging: RunResult; production: RunResult }> {
    const staging = await runSidecar(['once'], sidecarEnv(env, { DOMAINS: domains }));
    assert.equal(staging.code, 0, explain(staging));
    const production = await runSidecar(
      ['once'],
      sidecarEnv(env, { DOMAINS: domains, STAGING: 'false' }),
    );
    assert.equal(production.code, 0, explain(production));
    return { staging, production };
  }

  before(async () => {
    env = await startDevEnv();
    stagingRoot = await env.staging.getRootPem();
    productionRoot = await env.production.getRootPem();
  });
  after(async () => {
    await env?.stop();
  });

  it('writes a self-signed placeholder first, even when the CA is unreachable, and says why it failed', async () => {
    const { A, MULTI, MULTI_SANS, DOMAINS } = certs('placeholder');
    const r = await runSidecar(
      ['once'],
      sidecarEnv(env, {
        DOMAINS,
        ACME_STAGING_DIRECTORY_URL: 'https://127.0.0.1:1/dir',
        ACME_TIMEOUT_SECONDS: '5',
      }),
    );
    assert.equal(r.code, 1, explain(r));
    assert.match(
      r.stdout,
      new RegExp(`FAIL ${esc(A)} .*phase=self-signed.*ACME_CA_UNREACHABLE`),
      explain(r),
    );
    for (const [name, sans] of [
      [A, [A]],
      [MULTI, MULTI_SANS],
    ] as const) {
      const files = await liveFiles(env, name);
      const leaf = new X509Certificate(files.cert);
      assert.equal(leaf.issuer, leaf.subject, 'self-signed');
      assert.deepEqual(dnsNames(leaf), [...sans].sort());
      assert.ok(keyMatches(files.cert, files.privkey));
    }
    // nginx can now start its TLS servers on the placeholders.
    await env.nginx.reload({
      tlsServers: [
        { certName: A, serverNames: [A] },
        { certName: MULTI, serverNames: [...MULTI_SANS].reverse() },
      ],
    });
    const served = await tlsServedCert(env.ports.https, A);
    assert.equal(served.serialNumber, await serialOf(A));
  });

  it('issues from the staging CA through nginx, verifying against staging root only', async () => {
    const { A, MULTI, MULTI_SANS, DOMAINS } = certs('staging');
    const r = await runSidecar(['once'], sidecarEnv(env, { DOMAINS }));
    assert.equal(r.code, 0, explain(r));
    assert.deepEqual(
      orders(r).map((o) => o.phase),
      ['staging', 'staging'],
    );
    for (const [name, sans] of [
      [A, [A]],
      [MULTI, MULTI_SANS],
    ] as const) {
      const files = await liveFiles(env, name);
      assert.ok(
        chainVerifiesTo(files.fullchain, stagingRoot),
        `${name} verifies against staging root`,
      );
      assert.ok(!chainVerifiesTo(files.fullchain, productionRoot), `${name} not from production`);
      assert.deepEqual(dnsNames(new X509Certificate(files.cert)), [...sans].sort());
      assert.ok(keyMatches(files.cert, files.privkey), 'key matches');
      assert.equal(files.fullchain, files.cert + files.chain);
    }
    const stagingSerial = await serialOf(A);
    await env.nginx.reload({ tlsServers: [{ certName: A, serverNames: [A] }] });
    assert.equal((await tlsServedCert(env.ports.https, A)).serialNumber, stagingSerial);
  });

  describe('certificates promoted to production', () => {
    // Built once for the tests below, which only read it: a.demo.test and
    // multi, issued from staging and then from production.
    const A = 'a.demo.test';
    const MULTI = 'multi';
    const DOMAINS = `${A}, ${MULTI}=www.b.demo.test+b.demo.test`;
    let promoted: { staging: RunResult; production: RunResult };
    let stagingSerial: string;
    let prodSerial: string;
    let accountJson: string;
    before(async () => {
      const staging = await runSidecar(['once'], sidecarEnv(env, { DOMAINS }));
      assert.equal(staging.code, 0, explain(staging));
      stagingSerial = await serialOf(A);
      const production = await runSidecar(['once'], sidecarEnv(env, { DOMAINS, STAGING: 'false' }));
      assert.equal(production.code, 0, explain(production));
      promoted = { staging, production };
      prodSerial = await serialOf(A);
      accountJson = await accounts(env);
    });

    it('with STAGING=false, promotes to the production CA and nginx serves it after a reload', async () => {
      const r = promoted.production;
      assert.equal(r.code, 0, explain(r));
      assert.deepEqual(
        orders(r).map((o) => `${String(o.phase)}/${String(o.reason)}`),
        ['production/StagingOnly', 'production/StagingOnly'],
      );
      const files = await liveFiles(env, A);
      assert.ok(
        chainVerifiesTo(files.fullchain, productionRoot),
        'verifies against production root',
      );
      assert.ok(!chainVerifiesTo(files.fullchain, stagingRoot));
      assert.ok(keyMatches(files.cert, files.privkey));
      assert.equal(new X509Certificate(files.cert).serialNumber, prodSerial);
      assert.notEqual(prodSerial, stagingSerial);
      await env.nginx.reload({
        tlsServers: [
          { certName: A, serverNames: [A] },
          { certName: MULTI, serverNames: ['www.b.demo.test', 'b.demo.test'] },
        ],
      });
      assert.equal((await tlsServedCert(env.ports.https, A)).serialNumber, prodSerial);
      const multi = await tlsServedCert(env.ports.https, 'www.b.demo.test');
      assert.equal(multi.serialNumber, await serialOf(MULTI));
      const urls = JSON.parse(`[${accountJson}]`) as { url: string; directoryUrl: string }[];
      assert.deepEqual(
        urls.map((a) => a.directoryUrl),
        [env.staging.directoryUrl, env.production.directoryUrl],
      );
      assert.notEqual(urls[0]?.url, urls[1]?.url);
    });

    it('after a restart reuses the accounts and orders nothing for valid certificates', async () => {
      const before = await readlink(path.join(env.certDir, 'live', A));
      const r = await runSidecar(['once'], sidecarEnv(env, { DOMAINS, STAGING: 'false' }));
      assert.equal(r.code, 0, explain(r));
      assert.deepEqual(orders(r), []);
      assert.equal(r.logs.filter((l) => l.message === 'ACME account registered').length, 0);
      assert.equal(await accounts(env), accountJson);
      assert.equal(await readlink(path.join(env.certDir, 'live', A)), before, 'live/ untouched');
    });

    it('reports a failed validation at the CA with its reason, and keeps the other certificates', async () => {
      // SELF_CHECK off and a webroot nginx does not serve: the CA itself fails to fetch the token.
      const { mkdtemp } = await import('node:fs/promises');
      const stray = await mkdtemp(path.join(env.dir, 'not-served-'));
      const r = await runSidecar(
        ['once'],
        sidecarEnv(env, {
          DOMAINS: `${A}, v.demo.test`,
          STAGING: 'false',
          SELF_CHECK: 'false',
          WEBROOT: stray,
        }),
      );
      assert.equal(r.code, 1, explain(r));
      assert.match(r.stdout, /FAIL v\.demo\.test .*ACME_VALIDATION_FAILED: \w+: .*404/, explain(r));
      assert.match(r.stdout, /ok {3}a\.demo\.test/);
    });

    it('reports a bad hostname, skips it, and still serves the others', async () => {
      const r = await runSidecar(
        ['once'],
        sidecarEnv(env, { DOMAINS: `${A}, a*.demo.test, ../etc`, STAGING: 'false' }),
      );
      assert.equal(r.code, 1, explain(r));
      assert.match(r.stdout, /ok {3}a\.demo\.test/);
      assert.match(r.stdout, /SKIP "a\*\.demo\.test".*wildcard/);
      assert.match(r.stdout, /SKIP "\.\.\/etc"/);
      assert.ok(r.logs.some((l) => l.message === 'hostname skipped' && l.value === 'a*.demo.test'));
    });
  });

  it('re-issues a certificate whose hostnames changed, through staging, and leaves the others alone', async () => {
    const { A, MULTI, MULTI_SANS, DOMAINS } = certs('changed');
    await promote(DOMAINS);
    const prodSerial = await serialOf(A);
    const C = `c.changed.demo.test`;
    const domains = `${A}, ${MULTI}=${MULTI_SANS[1]}+${MULTI_SANS[0]}+${C}`;
    const r = await runSidecar(['once'], sidecarEnv(env, { DOMAINS: domains, STAGING: 'false' }));
    assert.equal(r.code, 0, explain(r));
    assert.deepEqual(orders(r), [
      { phase: 'staging', reason: 'StagingFirst', cert: MULTI },
      { phase: 'production', reason: 'DomainsChanged', cert: MULTI },
    ]);
    const files = await liveFiles(env, MULTI);
    assert.deepEqual(dnsNames(new X509Certificate(files.cert)), [MULTI_SANS[0], C, MULTI_SANS[1]]);
    assert.ok(chainVerifiesTo(files.fullchain, productionRoot));
    assert.equal(await serialOf(A), prodSerial);
  });
});

describe('e2e: renewal inside the renewal window', function () {
  this.timeout(300_000);
  let env: DevEnv;
  before(async () => {
    // 150-second certificates: by the default rule (half the lifetime, under
    // 10 days) the renewal window opens 75 s after issuance. RENEW_BEFORE_DAYS
    // cannot open it sooner (capped at half the lifetime, policy.ts), so the
    // test waits for the clock rather than moving the window.
    env = await startDevEnv({ pebble: { certificateValidityPeriod: 150 } });
  });
  after(async () => {
    await env?.stop();
  });

  it('renews a certificate inside its renewal window and nginx serves the new one', async () => {
    // The lifetime rule's window (ARI windows: ari.test.ts): Pebble's ARI
    // window for these certificates is their whole lifetime.
    const vars = sidecarEnv(env, { DOMAINS: 'r.demo.test', STAGING: 'false', ACME_ARI: 'off' });
    const first = await runSidecar(['once'], vars);
    assert.equal(first.code, 0, explain(first));
    const files = await liveFiles(env, 'r.demo.test');
    const leaf = new X509Certificate(files.cert);
    await env.nginx.reload({
      tlsServers: [{ certName: 'r.demo.test', serverNames: ['r.demo.test'] }],
    });
    assert.equal(
      (await tlsServedCert(env.ports.https, 'r.demo.test')).serialNumber,
      leaf.serialNumber,
    );

    // Before the window: nothing to do. The window opens 75 s after
    // issuance and this pass starts right after the first one ends.
    const early = await runSidecar(['once'], vars);
    assert.equal(early.code, 0, explain(early));
    assert.deepEqual(orders(early), []);
    const notBefore = new Date(leaf.validFrom).getTime();
    const notAfter = new Date(leaf.validTo).getTime();
    const windowOpens = notBefore + (notAfter - notBefore) / 2;
    assert.ok(Date.now() < windowOpens, 'the early pass ran before the window opened');
    await waitFor(() => Date.now() >= windowOpens + 1000, {
      what: 'the renewal window to open',
      timeoutMs: 120_000,
      intervalMs: 500,
    });
    const renewed = await runSidecar(['once'], vars);
    assert.equal(renewed.code, 0, explain(renewed));
    assert.deepEqual(
      orders(renewed).map((o) => `${String(o.phase)}/${String(o.reason)}`),
      ['production/NearingExpiry'],
    );
    const after = new X509Certificate((await liveFiles(env, 'r.demo.test')).cert);
    assert.notEqual(after.serialNumber, leaf.serialNumber);
    assert.ok(
      chainVerifiesTo(
        (await liveFiles(env, 'r.demo.test')).fullchain,
        await env.production.getRootPem(),
      ),
    );
    await env.nginx.reload();
    assert.equal(
      (await tlsServedCert(env.ports.https, 'r.demo.test')).serialNumber,
      after.serialNumber,
    );
  });
});

describe('e2e: CA problems from real Pebble are classified', function () {
  this.timeout(120_000);
  let env: DevEnv;
  before(async () => {
    // Pebble's own fault injection: every nonce is rejected as badNonce.
    env = await startDevEnv({ pebble: { nonceRejectPercent: 100 } });
  });
  after(async () => {
    await env?.stop();
  });

  it('names a badNonce storm as ACME_BAD_NONCE (retryable), not an unknown error', async () => {
    const r = await runSidecar(['once'], sidecarEnv(env, { DOMAINS: 'n.demo.test' }));
    assert.equal(r.code, 1, explain(r));
    assert.match(r.stdout, /FAIL n\.demo\.test .*error=ACME_BAD_NONCE: badNonce: /, explain(r));
    const failure = r.logs.find((l) => l.message === 'certificate step failed');
    assert.ok(failure?.nextRetry, 'scheduled for a retry');
  });
});
