// ACME profiles (issue 12, item 2) against Pebble 2.9 and the real nginx:
// ACME_PROFILE and the io.acme-sidecar.profile label reach newOrder, a
// profile the CA does not offer is refused in words that name it, and a
// changed profile re-issues.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import path from 'node:path';
import { startDevEnv, tlsServedCert, type DevEnv } from '../../devenv/index.js';
import { startFakeCattle } from '../../devenv/fake-cattle.js';
import type { CertMeta } from '../../src/domain/types.js';
import { DENT_LABEL, PROFILE_LABEL } from '../../src/platform/labels.js';
import { storedKey } from '../../src/store/keys.js';
import { chainVerifiesTo } from '../../src/util/x509.js';
import { runSidecar, sidecarEnv, type RunResult } from '../support/sidecar.js';

const DAY_S = 86_400;
/** Two profiles of very different lifetimes, so a certificate shows which one it got. */
const PROFILES = {
  default: { description: 'long: 90 days', validityPeriod: 90 * DAY_S },
  short: { description: 'short: 5 minutes', validityPeriod: 300 },
};

function explain(r: RunResult): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr.slice(-4000)}`;
}

function orders(r: RunResult): string[] {
  return r.logs
    .filter((l) => l.message === 'ordering certificate')
    .map((l) => `${String(l.phase)}/${String(l.reason)}`);
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('e2e: ACME profiles (Pebble 2.9, real nginx)', function () {
  this.timeout(180_000);
  let env: DevEnv;

  async function liveLeaf(name: string, certDir = env.certDir): Promise<X509Certificate> {
    return new X509Certificate(await readFile(path.join(certDir, 'live', name, 'cert.pem')));
  }
  /** Certificate lifetime in seconds. */
  const lifetimeS = (leaf: X509Certificate) =>
    (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 1000;
  async function storedMeta(name: string, phase: 'staging' | 'production'): Promise<CertMeta> {
    const raw = await readFile(path.join(env.certDir, storedKey(name, phase)), 'utf8');
    return (JSON.parse(raw) as { meta: CertMeta }).meta;
  }

  before(async () => {
    env = await startDevEnv({ pebble: { profiles: PROFILES } });
  });
  after(async () => {
    await env?.stop();
  });

  it("an order naming a profile gets that profile's lifetime, from staging and from production", async () => {
    const SHORT = 'a.short-profile.demo.test';
    const LONG = 'a.long-profile.demo.test';
    for (const [name, profile] of [
      [SHORT, 'short'],
      [LONG, 'default'],
    ] as const) {
      const staging = await runSidecar(
        ['once'],
        sidecarEnv(env, { DOMAINS: name, ACME_PROFILE: profile }),
      );
      assert.equal(staging.code, 0, explain(staging));
      const production = await runSidecar(
        ['once'],
        sidecarEnv(env, { DOMAINS: name, ACME_PROFILE: profile, STAGING: 'false' }),
      );
      assert.equal(production.code, 0, explain(production));
      assert.deepEqual(orders(production), ['production/StagingOnly'], explain(production));
      const leaf = await liveLeaf(name);
      assert.ok(
        chainVerifiesTo(
          await readFile(path.join(env.certDir, 'live', name, 'fullchain.pem'), 'utf8'),
          await env.production.getRootPem(),
        ),
      );
      const want = PROFILES[profile].validityPeriod;
      assert.ok(
        Math.abs(lifetimeS(leaf) - want) <= 60,
        `${name}: lifetime ${lifetimeS(leaf)} s, want about ${want} s (profile ${profile})`,
      );
      assert.equal((await storedMeta(name, 'staging')).profile, profile);
      assert.equal((await storedMeta(name, 'production')).profile, profile);
    }
  });

  it('refuses a profile the CA does not offer: once and check-config exit non-zero naming ACME_PROFILE and the profiles on offer', async () => {
    const NAME = 'a.unknown-profile.demo.test';
    const vars = sidecarEnv(env, { DOMAINS: NAME, ACME_PROFILE: 'nope' });
    const r = await runSidecar(['once'], vars);
    assert.equal(r.code, 1, explain(r));
    assert.match(
      r.stdout,
      new RegExp(
        `FAIL ${esc(NAME)} .*error=ACME_PROFILE_INVALID: ACME_PROFILE="nope" is not a profile the CA at ${esc(env.staging.directoryUrl)} offers; it offers: default \\(long: 90 days\\), short \\(short: 5 minutes\\)`,
      ),
      explain(r),
    );
    // Refused before any order reached the CA.
    assert.equal(r.logs.filter((l) => l.message === 'order placed').length, 0, explain(r));
    const check = await runSidecar(['check-config'], { ...vars, STAGING: 'false' });
    assert.notEqual(check.code, 0, explain(check));
    for (const ca of [env.staging, env.production]) {
      assert.match(
        check.stdout + check.stderr,
        new RegExp(
          `ACME_PROFILE="nope" is not a profile the CA at ${esc(ca.directoryUrl)} offers; it offers: default \\(long: 90 days\\), short \\(short: 5 minutes\\)`,
        ),
        explain(check),
      );
    }
  });

  it('re-issues a certificate whose profile changed (ProfileChanged), staging first, and nginx serves the new one; no loop after', async () => {
    const NAME = 'a.changed-profile.demo.test';
    for (const STAGING of ['true', 'false']) {
      const r = await runSidecar(
        ['once'],
        sidecarEnv(env, { DOMAINS: NAME, ACME_PROFILE: 'default', STAGING }),
      );
      assert.equal(r.code, 0, explain(r));
    }
    const before = await liveLeaf(NAME);
    assert.ok(lifetimeS(before) > 80 * DAY_S, `lifetime ${lifetimeS(before)} s`);
    await env.nginx.reload({ tlsServers: [{ certName: NAME, serverNames: [NAME] }] });
    assert.equal((await tlsServedCert(env.ports.https, NAME)).serialNumber, before.serialNumber);

    const changed = await runSidecar(
      ['once'],
      sidecarEnv(env, { DOMAINS: NAME, ACME_PROFILE: 'short', STAGING: 'false' }),
    );
    assert.equal(changed.code, 0, explain(changed));
    assert.deepEqual(
      orders(changed),
      ['staging/StagingFirst', 'production/ProfileChanged'],
      explain(changed),
    );
    const after = await liveLeaf(NAME);
    assert.notEqual(after.serialNumber, before.serialNumber);
    assert.ok(Math.abs(lifetimeS(after) - 300) <= 60, `lifetime ${lifetimeS(after)} s`);
    await env.nginx.reload({ tlsServers: [{ certName: NAME, serverNames: [NAME] }] });
    assert.equal((await tlsServedCert(env.ports.https, NAME)).serialNumber, after.serialNumber);

    const again = await runSidecar(
      ['once'],
      sidecarEnv(env, { DOMAINS: NAME, ACME_PROFILE: 'short', STAGING: 'false' }),
    );
    assert.equal(again.code, 0, explain(again));
    assert.deepEqual(orders(again), [], explain(again));
  });

  it("warns once about a RENEW_BEFORE_DAYS that does not fit a short profile's lifetime, naming the certificate and the lifetime, and does not renew on the next pass", async () => {
    // 30 days on a 5-minute certificate: beyond its lifetime. 0.00345 days
    // (298 s): under it, but over half, so capped; uncapped it would renew
    // 2 s after issue, at every pass.
    for (const [days, words] of [
      ['30', /at or above the certificate lifetime/],
      ['0.00345', /more than half the certificate lifetime; capped at half/],
    ] as const) {
      const NAME = `rb${days.replace('.', '-')}.renew-before.demo.test`;
      const vars = sidecarEnv(env, {
        DOMAINS: NAME,
        ACME_PROFILE: 'short',
        RENEW_BEFORE_DAYS: days,
        // The lifetime rule alone decides.
        ACME_ARI: 'off',
      });
      const first = await runSidecar(['once'], vars);
      assert.equal(first.code, 0, explain(first));
      assert.deepEqual(orders(first), ['staging/NotIssued'], explain(first));
      const warnings = first.logs.filter(
        (l) => l.level === 'warn' && /RENEW_BEFORE_DAYS/.test(String(l.message)),
      );
      assert.equal(warnings.length, 1, explain(first));
      const w = warnings[0]!;
      assert.match(String(w.message), words);
      assert.equal(w.cert, NAME);
      assert.equal(w.renewBeforeDays, Number(days));
      assert.match(String(w.lifetime), /^\d+ minutes?$/, JSON.stringify(w));
      const lifetime = Number(w.lifetimeSeconds);
      assert.ok(Math.abs(lifetime - 300) <= 2, `lifetime ${lifetime} s`);
      assert.ok(Math.abs(Number(w.renewsBeforeExpirySeconds) - lifetime / 2) <= 1);
      const again = await runSidecar(['once'], vars);
      assert.equal(again.code, 0, explain(again));
      assert.deepEqual(orders(again), [], explain(again));
    }
  });

  it('does not re-issue a certificate that records no profile while none is configured', async () => {
    const NAME = 'a.no-profile.demo.test';
    const first = await runSidecar(['once'], sidecarEnv(env, { DOMAINS: NAME }));
    assert.equal(first.code, 0, explain(first));
    assert.equal((await storedMeta(NAME, 'staging')).profile, undefined);
    const again = await runSidecar(['once'], sidecarEnv(env, { DOMAINS: NAME }));
    assert.equal(again.code, 0, explain(again));
    assert.deepEqual(orders(again), [], explain(again));
  });

  it('takes a per-certificate profile from a Rancher label, over ACME_PROFILE; a bad label skips only its own service', async () => {
    const cattle = await startFakeCattle();
    try {
      const stateDir = await mkdtemp(path.join(env.dir, 'state-'));
      cattle.addService({
        name: 'labelled',
        labels: { [DENT_LABEL]: 'label.profiles.demo.test', [PROFILE_LABEL]: 'short' },
      });
      cattle.addService({
        name: 'plain',
        labels: { [DENT_LABEL]: 'plain.profiles.demo.test' },
      });
      cattle.addService({
        name: 'bad',
        labels: { [DENT_LABEL]: 'bad.profiles.demo.test', [PROFILE_LABEL]: '../short' },
      });
      const r = await runSidecar(
        ['once'],
        sidecarEnv(env, {
          PLATFORM: 'rancher',
          CATTLE_URL: cattle.url,
          CATTLE_ACCESS_KEY: cattle.accessKey,
          CATTLE_SECRET_KEY: cattle.secretKey,
          STATE_DIR: stateDir,
          ACME_PROFILE: 'default',
        }),
      );
      // The bad label is a skipped entry: the pass reports it and exits 1.
      assert.equal(r.code, 1, explain(r));
      assert.match(
        r.stdout,
        /SKIP "\.\.\/short" \(rancher:service\/bad\(.*\):io\.acme-sidecar\.profile\): bad-profile: /,
        explain(r),
      );
      assert.match(r.stdout, /ok +label\.profiles\.demo\.test /, explain(r));
      assert.match(r.stdout, /ok +plain\.profiles\.demo\.test /, explain(r));
      assert.doesNotMatch(r.stdout, /bad\.profiles\.demo\.test \[/, explain(r));
      const labelled = await liveLeaf('label.profiles.demo.test', stateDir);
      const plain = await liveLeaf('plain.profiles.demo.test', stateDir);
      assert.ok(Math.abs(lifetimeS(labelled) - 300) <= 60, `label: ${lifetimeS(labelled)} s`);
      assert.ok(lifetimeS(plain) > 80 * DAY_S, `ACME_PROFILE=default: ${lifetimeS(plain)} s`);
    } finally {
      await cattle.close();
    }
  });
});
