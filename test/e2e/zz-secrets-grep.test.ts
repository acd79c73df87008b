/**
 * Issue 4, item 7: "A test greps everything the sidecar printed during the
 * e2e suite for each secret."
 *
 * It runs last: `npm test` (scripts/test.ts) runs the other e2e files in
 * parallel mocha workers, then this file in a mocha run of its own
 * (`npm run test:e2e:last`). Every sidecar run leaves its stdout and stderr
 * in a file under E2E_RECORD_DIR (test/support/sidecar.ts); every test that
 * hands a sidecar a secret registers it (`registerSecret`), there too. Run
 * by itself after the other files in one mocha process (named zz- so that
 * it sorts last), it reads that process's outputs.
 *
 * So that it can never pass on nothing, it first runs sidecar passes of its
 * own that hold every kind of secret (Cattle secret key, EAB HMAC key,
 * webhook token, private keys pushed to the platform) at debug level, on
 * the success path and on the failure paths. Run after the whole e2e suite,
 * it also requires that suite's output to be there.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { startFakeCattle, type FakeCattle } from '../../devenv/fake-cattle.js';
import { DENT_LABEL } from '../../src/platform/rancher/rancher-platform.js';
import {
  knownSecrets,
  registerSecret,
  runSidecar,
  sidecarEnv,
  suiteOutputs,
  type RunResult,
} from '../support/sidecar.js';

const THIS_FILE = fileURLToPath(import.meta.url);
const E2E_DIR = path.dirname(THIS_FILE);
/** Sidecar outputs (stdout and stderr count one each) the rest of the e2e suite leaves at the least. */
const MIN_SUITE_OUTPUTS = 30;

function explain(r: RunResult): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr.slice(-4000)}`;
}

/**
 * The forms a secret could be printed in: as given, URL-encoded, and for a
 * base64url key (an EAB HMAC key) its bytes as standard base64 and hex.
 */
function forms(secret: string): string[] {
  const out = new Set([secret, encodeURIComponent(secret)]);
  if (/^[A-Za-z0-9_-]{22,}$/.test(secret)) {
    const bytes = Buffer.from(secret, 'base64url');
    if (bytes.toString('base64url') === secret && bytes.length >= 16) {
      out.add(bytes.toString('base64'));
      out.add(bytes.toString('base64').replace(/=+$/, ''));
      out.add(bytes.toString('hex'));
    }
  }
  return [...out];
}

/** Where `needle` was printed, with some context, or undefined. */
function findIn(outputs: readonly string[], needle: string): string | undefined {
  for (const [i, text] of outputs.entries()) {
    const at = text.indexOf(needle);
    if (at >= 0) {
      return `output #${i} (${i % 2 === 0 ? 'stdout' : 'stderr'}): ...${text.slice(Math.max(0, at - 300), at + needle.length + 100)}...`;
    }
  }
  return undefined;
}

describe('e2e: no secret in anything the sidecar printed (runs last)', function () {
  this.timeout(180_000);
  let outputsBefore = 0;
  let suiteRan = false;
  let env: DevEnv;
  let cattle: FakeCattle;
  let webhook: http.Server;
  const own: RunResult[] = [];

  before(async function () {
    outputsBefore = suiteOutputs().length;
    // Did the whole e2e suite run before this file? Under `npm test` it ran
    // to its end in parallel workers just before (scripts/test.ts says so
    // with E2E_SUITE_DONE); otherwise, did it load in this process (mocha's
    // root suite)? A run of a few files proves nothing about the count.
    let root = this.test?.parent;
    while (root?.parent) root = root.parent;
    const loaded = new Set((root?.suites ?? []).map((s) => s.file));
    suiteRan =
      process.env.E2E_SUITE_DONE === '1' ||
      readdirSync(E2E_DIR)
        .filter((f) => f.endsWith('.test.ts'))
        .every((f) => loaded.has(path.join(E2E_DIR, f)));

    const hmacKey = randomBytes(32).toString('base64url');
    const token = `hook-token-${randomBytes(12).toString('hex')}`;
    cattle = await startFakeCattle({
      accessKey: 'AK-secrets-grep',
      secretKey: `SK-secrets-grep-${randomBytes(16).toString('hex')}`,
    });
    const wrongSecret = `SK-wrong-${randomBytes(16).toString('hex')}`;
    registerSecret(hmacKey);
    registerSecret(token);
    registerSecret(cattle.secretKey, { basicAuthUser: cattle.accessKey });
    registerSecret(wrongSecret, { basicAuthUser: cattle.accessKey });
    cattle.addService({ name: 'web', labels: { [DENT_LABEL]: 'grep.demo.test' } });
    // One failed request, retried: the client's warning path runs too.
    cattle.fail({ method: 'GET', pathIncludes: 'services', times: 1 }, { status: 503 });

    // A webhook that refuses: its failure is logged, URL (and token) in hand.
    webhook = http.createServer((req, res) => {
      req.resume();
      res.writeHead(500).end('no');
    });
    await new Promise<void>((r) => webhook.listen(0, '127.0.0.1', r));
    const port = (webhook.address() as AddressInfo).port;

    env = await startDevEnv({ pebble: { externalAccountMACKeys: { 'kid-grep': hmacKey } } });
    const vars = (extra: Record<string, string> = {}) =>
      sidecarEnv(env, {
        PLATFORM: 'rancher',
        CATTLE_URL: cattle.url,
        CATTLE_ACCESS_KEY: cattle.accessKey,
        CATTLE_SECRET_KEY: cattle.secretKey,
        EAB_KID: 'kid-grep',
        EAB_HMAC_KEY: hmacKey,
        HOOK_WEBHOOK_URL: `http://127.0.0.1:${port}/hook?token=${token}`,
        LOG_LEVEL: 'debug',
        ...extra,
      });
    own.push(await runSidecar(['once'], vars()));
    // Failure paths: Rancher refuses the credentials; a config error.
    own.push(await runSidecar(['once'], vars({ CATTLE_SECRET_KEY: wrongSecret })));
    own.push(await runSidecar(['once'], vars({ EAB_HMAC_KEY: `${hmacKey}!` })));
  });
  after(async () => {
    if (webhook) await new Promise((r) => webhook.close(r));
    await cattle?.close();
    await env?.stop();
  });

  it('has real output to grep: its own passes ran (issued, pushed to Rancher, then failed), and the suite before it left its output', () => {
    const [ok, unauthorized, badConfig] = own as [RunResult, RunResult, RunResult];
    assert.equal(ok.code, 0, explain(ok));
    const pushed = cattle.certificates().find((c) => c.name === 'grep.demo.test');
    assert.match(String(pushed?.key), /PRIVATE KEY-----/, 'a private key went to Rancher');
    assert.ok(ok.logs.length > 10, `only ${ok.logs.length} log lines at debug level`);
    assert.ok(
      ok.logs.some((l) => l.message === 'Rancher API request failed; retrying'),
      explain(ok),
    );
    assert.notEqual(unauthorized.code, 0, explain(unauthorized));
    assert.match(unauthorized.stdout + unauthorized.stderr, /PLATFORM_UNAUTHORIZED/);
    assert.equal(badConfig.code, 2, explain(badConfig));
    if (suiteRan) {
      assert.ok(
        outputsBefore >= MIN_SUITE_OUTPUTS,
        `the whole e2e suite ran before this file but left only ${outputsBefore} sidecar outputs (expected ${MIN_SUITE_OUTPUTS}+): is runSidecar/collect still recording them (E2E_RECORD_DIR)?`,
      );
    }
  });

  it('prints no registered secret, in any form, in any output', () => {
    const secrets = knownSecrets();
    const outputs = suiteOutputs();
    // Ours at least: the EAB key, the webhook token, two Cattle secrets and their Basic credentials.
    assert.ok(secrets.length >= 6, `${secrets.length} secrets registered`);
    const leaks: string[] = [];
    for (const secret of secrets) {
      for (const form of forms(secret)) {
        const where = findIn(outputs, form);
        if (where)
          leaks.push(`secret ${secret.slice(0, 4)}... (as ${form.slice(0, 8)}...) in ${where}`);
      }
    }
    assert.deepEqual(leaks, [], leaks.join('\n\n'));
  });

  it('prints no private key (no "PRIVATE KEY-----" at all)', () => {
    const where = findIn(suiteOutputs(), 'PRIVATE KEY-----');
    assert.equal(where, undefined, where);
  });
});
