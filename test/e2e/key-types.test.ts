// The CSR of every key type the sidecar makes (src/acme/der.ts, not a
// library) is accepted by a real Pebble, and the certificate it returns is
// for that key and those names.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { AcmeIssuer } from '../../src/acme/acme-issuer.js';
import { configureAcmeHttp, noncePool } from '../../src/acme/http.js';
import { WebrootResponder } from '../../src/challenge/webroot-responder.js';
import { KEY_TYPES } from '../../src/domain/types.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { silentLogger } from '../../src/util/log.js';
import { chainVerifiesTo, keyMatches, keyTypeOf, sanNames } from '../../src/util/x509.js';

describe('e2e: Pebble accepts the CSR of every key type', function () {
  this.timeout(240_000);
  let env: DevEnv;
  let stateDir: string;
  let issuer: AcmeIssuer;

  before(async () => {
    env = await startDevEnv({ pebble: { noSleep: true, nonceRejectPercent: 0 } });
    stateDir = await mkdtemp(path.join(os.tmpdir(), 'key-types-'));
    configureAcmeHttp({ timeoutMs: 30_000, caBundlePem: await readFile(env.caPemPath, 'utf8') });
    noncePool.clear();
    issuer = new AcmeIssuer({
      phase: 'staging',
      directoryUrl: env.staging.directoryUrl,
      store: new FsCertStore(stateDir),
      responder: new WebrootResponder({
        webroot: env.webroot,
        selfCheck: true,
        selfCheckAddress: `127.0.0.1:${env.ports.http}`,
        log: silentLogger,
      }),
      log: silentLogger,
    });
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
