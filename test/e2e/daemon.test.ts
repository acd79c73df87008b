import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { collect, sidecarEnv, startSidecar } from '../support/sidecar.js';
import { waitFor } from '../support/wait.js';

async function tokens(env: DevEnv): Promise<string[]> {
  return readdir(path.join(env.webroot, '.well-known', 'acme-challenge'));
}

describe('e2e: acme-sidecar run (daemon)', function () {
  this.timeout(120_000);
  let env: DevEnv;
  before(async () => {
    // Pebble's validation delay on (0-15 s): an order is reliably in flight
    // when SIGTERM arrives.
    env = await startDevEnv({ pebble: { noSleep: false } });
  });
  after(async () => {
    await env?.stop();
  });

  it('on SIGTERM in the middle of an order, removes its challenge files and exits 0 in bounded time', async () => {
    const child = startSidecar(
      ['run'],
      sidecarEnv(env, { DOMAINS: 'slow1.demo.test, slow2.demo.test', LOOP_TIME: '0' }),
    );
    const result = collect(child, 90_000);
    // Fails unless a challenge token was written. Not read again after it:
    // by then the token may be validated and removed (Pebble's delay can be 0 s).
    await waitFor(async () => (await tokens(env)).length > 0, {
      what: 'a challenge token in the webroot',
      timeoutMs: 30_000,
    });
    const t0 = Date.now();
    child.kill('SIGTERM');
    const r = await result;
    const took = Date.now() - t0;
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.ok(took < 30_000, `stopped in ${took} ms`);
    assert.deepEqual(await tokens(env), [], 'no challenge file left behind');
    const messages = r.logs.map((l) => l.message);
    assert.ok(messages.includes('shutting down'));
    assert.ok(messages.includes('stopped'));
  });
});
