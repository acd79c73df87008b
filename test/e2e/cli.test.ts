import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { runSidecar, sidecarEnv, type RunResult } from '../support/sidecar.js';

const explain = (r: RunResult) => `exit ${r.code}\n${r.stdout}\n${r.stderr.slice(-2000)}`;

describe('e2e: acme-sidecar check-config and once --dry-run', function () {
  this.timeout(120_000);
  let env: DevEnv;
  before(async () => {
    env = await startDevEnv();
  });
  after(() => env?.stop());

  it('check-config: all ok when the CA, the platform and nginx are right', async () => {
    const r = await runSidecar(
      ['check-config'],
      sidecarEnv(env, { DOMAINS: 'c1.demo.test, c2.demo.test', STAGING: 'false' }),
    );
    assert.equal(r.code, 0, explain(r));
    assert.match(r.stdout, /^ok {3}staging CA: https:\/\/127\.0\.0\.1:\d+\/dir answers$/m);
    assert.match(r.stdout, /^ok {3}production CA: /m);
    assert.match(r.stdout, /^ok {3}platform \(static\): 2 certificate\(s\) requested$/m);
    assert.match(r.stdout, /^ok {3}webroot for c1\.demo\.test: /m);
    assert.match(r.stdout, /^ok {3}webroot for c2\.demo\.test: /m);
    assert.deepEqual(
      await readdir(path.join(env.webroot, '.well-known', 'acme-challenge')),
      [],
      'probe removed',
    );
  });

  it('check-config: a webroot nginx does not serve is found, in plain words', async () => {
    const stray = await mkdtemp(path.join(env.dir, 'stray-'));
    const r = await runSidecar(
      ['check-config'],
      sidecarEnv(env, { DOMAINS: 'c1.demo.test', WEBROOT: stray }),
    );
    assert.equal(r.code, 1, explain(r));
    assert.match(
      r.stdout,
      /^FAIL webroot for c1\.demo\.test: .*answered HTTP 404 \(is \/\.well-known\/acme-challenge\/ served from WEBROOT=.*stray-/m,
    );
  });

  it('check-config: an unreachable CA and an untrusted one are told apart', async () => {
    const down = await runSidecar(
      ['check-config'],
      sidecarEnv(env, {
        DOMAINS: 'c1.demo.test',
        ACME_STAGING_DIRECTORY_URL: 'https://127.0.0.1:1/dir',
      }),
    );
    assert.equal(down.code, 1, explain(down));
    assert.match(
      down.stdout,
      /^FAIL staging CA: cannot reach https:\/\/127\.0\.0\.1:1\/dir: ECONNREFUSED \(nothing listens there\)$/m,
    );
    const untrusted = await runSidecar(
      ['check-config'],
      sidecarEnv(env, { DOMAINS: 'c1.demo.test', ACME_CA_BUNDLE: '' }),
    );
    assert.equal(untrusted.code, 1, explain(untrusted));
    assert.match(untrusted.stdout, /^FAIL staging CA: .*set ACME_CA_BUNDLE\?\)$/m);
  });

  it('once --dry-run says what it would do and changes nothing', async () => {
    const state = await mkdtemp(path.join(env.dir, 'dry-'));
    const vars = sidecarEnv(env, {
      // a*.bad.test: a "*" that is not a whole first label (a wildcard proper
      // is issued by DNS-01, dns01.test.ts).
      DOMAINS: 'd1.demo.test, a*.bad.test',
      STATE_DIR: state,
      STAGING: 'false',
    });
    const r = await runSidecar(['once', '--dry-run'], vars);
    assert.equal(r.code, 0, explain(r));
    assert.match(
      r.stdout,
      /^d1\.demo\.test \[d1\.demo\.test\]: would write a self-signed placeholder \(Missing\)$/m,
    );
    assert.match(r.stdout, /^SKIP "a\*\.bad\.test"/m);
    assert.match(r.stdout, /dry run: nothing was changed/);
    assert.deepEqual(await readdir(state), [], 'STATE_DIR untouched');
    const real = await runSidecar(['once'], vars);
    assert.equal(real.code, 1, explain(real)); // the skipped hostname
    // A certificate just issued is not asked about (lifecycle/ari.ts
    // ariFirstCheckAt): its renewal time is the lifetime rule's until then.
    const fresh = await runSidecar(['once', '--dry-run'], vars);
    assert.match(
      fresh.stdout,
      /^d1\.demo\.test \[d1\.demo\.test\]: would nothing \(Valid, renews after \S+\)$/m,
    );
    // The next run asks: Pebble 2.9 offers ARI, and the renewal time is the
    // one drawn in its window.
    const again = await runSidecar(['once'], vars);
    assert.equal(again.code, 1, explain(again)); // the skipped hostname
    const after = await runSidecar(['once', '--dry-run'], vars);
    assert.match(
      after.stdout,
      /^d1\.demo\.test \[d1\.demo\.test\]: would nothing \(Valid, renews after \S+ \(CA renewal window\)\)$/m,
    );
  });

  it('once with LIVE_DIR: live/ and archive/ there, the account key only in STATE_DIR', async () => {
    const state = await mkdtemp(path.join(env.dir, 'state-'));
    const served = await mkdtemp(path.join(env.dir, 'served-'));
    const r = await runSidecar(
      ['once'],
      sidecarEnv(env, { DOMAINS: 'l1.demo.test', STATE_DIR: state, LIVE_DIR: served }),
    );
    assert.equal(r.code, 0, explain(r));
    assert.deepEqual((await readdir(served)).sort(), ['archive', 'live']);
    const pem = await readFile(path.join(served, 'live', 'l1.demo.test', 'fullchain.pem'), 'utf8');
    assert.match(pem, /-----BEGIN CERTIFICATE-----/);
    const stateTop = await readdir(state);
    assert.ok(stateTop.includes('acme'), stateTop.join(','));
    assert.ok(!stateTop.includes('live') && !stateTop.includes('archive'), stateTop.join(','));
    const accounts = await readdir(path.join(state, 'acme'));
    assert.ok(accounts.length > 0);
    for (const a of accounts) {
      assert.ok((await readdir(path.join(state, 'acme', a))).includes('account-key.pem'), a);
    }
  });
});
