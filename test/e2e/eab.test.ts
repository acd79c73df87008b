/**
 * External Account Binding (RFC 8555 section 7.3.4) against real Pebble
 * configured to require it (`externalAccountBindingRequired`, see
 * devenv/pebble.ts), the way ZeroSSL, Google Trust Services and most
 * enterprise CAs do.
 */
import assert from 'node:assert/strict';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import path from 'node:path';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { accountPrefix } from '../../src/store/keys.js';
import { chainVerifiesTo, dnsNames, keyMatches } from '../../src/util/x509.js';
import {
  knownSecrets,
  registerSecret,
  runSidecar,
  sidecarEnv,
  type RunResult,
} from '../support/sidecar.js';

function explain(r: RunResult): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr.slice(-4000)}`;
}

/** No output of this run contains a registered secret. */
function assertNoSecret(r: RunResult): void {
  for (const s of knownSecrets()) {
    assert.ok(
      !r.stdout.includes(s) && !r.stderr.includes(s),
      `a secret was printed:\n${explain(r)}`,
    );
  }
}

describe('e2e: External Account Binding against a Pebble that requires it', function () {
  this.timeout(180_000);
  const KID = 'kid-1';
  const DOMAIN = 'eab.demo.test';
  // A 32-byte HMAC key, base64url as CAs hand them out.
  const hmacKey = randomBytes(32).toString('base64url');
  const wrongKey = randomBytes(32).toString('base64url');
  let env: DevEnv;
  let stagingRoot: string;

  before(async () => {
    registerSecret(hmacKey);
    registerSecret(wrongKey);
    env = await startDevEnv({ pebble: { externalAccountMACKeys: { [KID]: hmacKey } } });
    stagingRoot = await env.staging.getRootPem();
  });
  after(async () => {
    await env?.stop();
  });
  /** A STATE_DIR of its own (no account, no retry schedule), removed with the devenv. */
  const freshStateDir = () => mkdtemp(path.join(env.dir, 'state-'));

  // Every test has a STATE_DIR of its own, or one built by the `before` of
  // its group: none depends on another having run first.

  it('without EAB the account is refused: the certificate fails with the CA saying an external account is required', async () => {
    const r = await runSidecar(
      ['once'],
      sidecarEnv(env, { DOMAINS: DOMAIN, STATE_DIR: await freshStateDir() }),
    );
    assert.equal(r.code, 1, explain(r));
    assert.match(r.stdout, /FAIL eab\.demo\.test .*ACME_REJECTED/, explain(r));
    assert.match(r.stdout, /externalAccountRequired/, explain(r));
    assertNoSecret(r);
  });

  it('with a wrong HMAC key the account is refused as unauthorized, and the key is never printed', async () => {
    const r = await runSidecar(
      ['once'],
      sidecarEnv(env, {
        DOMAINS: DOMAIN,
        EAB_KID: KID,
        EAB_HMAC_KEY: wrongKey,
        STATE_DIR: await freshStateDir(),
      }),
    );
    assert.equal(r.code, 1, explain(r));
    assert.match(r.stdout, /FAIL eab\.demo\.test .*ACME_UNAUTHORIZED/, explain(r));
    assertNoSecret(r);
  });

  it('EAB_KID without EAB_HMAC_KEY is bad configuration (exit 2) naming the missing variable', async () => {
    const r = await runSidecar(['once'], sidecarEnv(env, { DOMAINS: DOMAIN, EAB_KID: KID }));
    assert.equal(r.code, 2, explain(r));
    assert.match(r.stdout + r.stderr, /EAB_HMAC_KEY.*EAB_KID/, explain(r));
  });

  it('an HMAC key that is not base64url is bad configuration, and its value is not echoed', async () => {
    const bad = `${hmacKey.slice(0, 20)}!not*base64`;
    registerSecret(bad);
    const r = await runSidecar(
      ['once'],
      sidecarEnv(env, { DOMAINS: DOMAIN, EAB_KID: KID, EAB_HMAC_KEY: bad }),
    );
    assert.equal(r.code, 2, explain(r));
    assert.match(r.stdout + r.stderr, /EAB_HMAC_KEY/, explain(r));
    assertNoSecret(r);
  });

  describe('an account bound with EAB', () => {
    // Built once: the tests below only read this STATE_DIR (the second runs a
    // pass that must change nothing).
    let boundState: string;
    let bound: RunResult;
    before(async () => {
      boundState = await freshStateDir();
      bound = await runSidecar(
        ['once'],
        sidecarEnv(env, {
          DOMAINS: DOMAIN,
          EAB_KID: KID,
          EAB_HMAC_KEY: hmacKey,
          STATE_DIR: boundState,
        }),
      );
    });

    it('with EAB_KID and EAB_HMAC_KEY the account binds and the certificate is issued through nginx', async () => {
      const r = bound;
      assert.equal(r.code, 0, explain(r));
      assert.ok(
        r.logs.some((l) => l.message === 'ACME account registered'),
        'a new account was registered (the refused attempts created none)',
      );
      const dir = path.join(boundState, 'live', DOMAIN);
      const [cert, fullchain, privkey] = await Promise.all(
        ['cert.pem', 'fullchain.pem', 'privkey.pem'].map((f) =>
          readFile(path.join(dir, f), 'utf8'),
        ),
      );
      assert.ok(chainVerifiesTo(fullchain!, stagingRoot), 'issued by the staging Pebble');
      assert.deepEqual(dnsNames(new X509Certificate(cert!)), [DOMAIN]);
      assert.ok(keyMatches(cert!, privkey!));
      const account = JSON.parse(
        await readFile(
          path.join(boundState, accountPrefix(env.staging.directoryUrl), 'account.json'),
          'utf8',
        ),
      ) as Record<string, unknown>;
      assert.equal(typeof account.url, 'string');
      assert.ok(
        !JSON.stringify(account).includes(hmacKey),
        'the HMAC key is not stored with the account',
      );
      assertNoSecret(r);
    });

    it('the bound account is reused: a second pass registers nothing and orders nothing', async () => {
      const r = await runSidecar(
        ['once'],
        sidecarEnv(env, {
          DOMAINS: DOMAIN,
          EAB_KID: KID,
          EAB_HMAC_KEY: hmacKey,
          STATE_DIR: boundState,
        }),
      );
      assert.equal(r.code, 0, explain(r));
      assert.ok(!r.logs.some((l) => l.message === 'ACME account registered'), explain(r));
      assert.ok(!r.logs.some((l) => l.message === 'ordering certificate'), explain(r));
    });
  });

  it('adding the EAB credentials after the refusal issues at once: the retry schedule belongs to the configuration it failed under', async () => {
    // A refusal first (as in the first test), which leaves a retry schedule.
    const state = await freshStateDir();
    const refused = await runSidecar(
      ['once'],
      sidecarEnv(env, { DOMAINS: DOMAIN, STATE_DIR: state }),
    );
    assert.equal(refused.code, 1, explain(refused));
    // The CA's error asked for EAB; the operator adds it and runs again.
    const r = await runSidecar(
      ['once'],
      sidecarEnv(env, { DOMAINS: DOMAIN, EAB_KID: KID, EAB_HMAC_KEY: hmacKey, STATE_DIR: state }),
    );
    assert.equal(r.code, 0, explain(r));
    assert.ok(
      r.logs.some((l) => l.message === 'ordering certificate'),
      explain(r),
    );
    assertNoSecret(r);
  });
});
