/**
 * The e2e tests' staging issuer on a devenv: the ACME HTTP adapter set to
 * trust its Pebble (a fresh nonce pool), and an AcmeIssuer answering
 * HTTP-01 through the devenv's nginx webroot, self-check included.
 */
import { readFile } from 'node:fs/promises';
import type { DevEnv } from '../../devenv/index.js';
import { AcmeIssuer } from '../../src/acme/acme-issuer.js';
import { configureAcmeHttp, noncePool } from '../../src/acme/http.js';
import { WebrootResponder } from '../../src/challenge/webroot-responder.js';
import { FsCertStore } from '../../src/store/fs-store.js';
import { silentLogger } from '../../src/util/log.js';

export async function webrootStagingIssuer(env: DevEnv, stateDir: string): Promise<AcmeIssuer> {
  configureAcmeHttp({ timeoutMs: 30_000, caBundlePem: await readFile(env.caPemPath, 'utf8') });
  noncePool.clear();
  return new AcmeIssuer({
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
}
