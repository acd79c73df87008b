// The CSR of every key type the sidecar makes (src/acme/der.ts, not a
// library) is accepted by a real Pebble, and the certificate it returns is
// for that key and those names.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { AcmeIssuer } from '../../src/acme/acme-issuer.js';
import { KEY_TYPES } from '../../src/domain/types.js';
import { webrootStagingIssuer } from '../support/webroot-issuer.js';
import { chainVerifiesTo, keyMatches, keyTypeOf, sanNames } from '../../src/util/x509.js';

describe('e2e: Pebble accepts the CSR of every key type', function () {
  this.timeout(240_000);
  let env: DevEnv;
  let stateDir: string;
  let issuer: AcmeIssuer;

  before(async () => {
    env = await startDevEnv({ pebble: { noSleep: true, nonceRejectPercent: 0 } });
    stateDir = await mkdtemp(path.join(os.tmpdir(), 'key-types-'));
    issuer = await webrootStagingIssuer(env, stateDir);
  });
  after(async () => {
    await env?.stop();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  for (const keyType of KEY_TYPES) {
    it(keyType, async () => {
      const names = [`${keyType}.kt.test`, `www.${keyType}.kt.test`];
      const bundle = await issuer.issue(
        { name: names[0] as string, domains: names, source: 'test' },
        keyType,
      );
      assert.ok(chainVerifiesTo(bundle.fullchain, await env.staging.getRootPem()));
      assert.ok(keyMatches(bundle.cert, bundle.privkey));
      assert.equal(keyTypeOf(bundle.privkey), keyType);
      assert.deepEqual(sanNames(new X509Certificate(bundle.cert)), [...names].sort());
    });
  }
});
