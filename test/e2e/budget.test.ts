import assert from 'node:assert/strict';
import path from 'node:path';
import { startDevEnv, type DevEnv } from '../../devenv/index.js';
import { collect, runSidecar, sidecarEnv, startSidecar } from '../support/sidecar.js';

describe('e2e: rate-limit budget and forced renewal over the control socket', function () {
  this.timeout(180_000);
  let env: DevEnv;
  before(async () => {
    env = await startDevEnv();
    // fail.demo.test resolves to 127.0.0.2, where nothing listens: Pebble's
    // validation of it always fails. Every other name still reaches nginx.
    const resp = await fetch(`${env.dns.managementUrl}/add-a`, {
      method: 'POST',
      body: JSON.stringify({ host: 'fail.demo.test.', addresses: ['127.0.0.2'] }),
    });
    assert.equal(resp.status, 200);
  });
  after(() => env?.stop());

  it('sends at most the budgeted 5 orders an hour for a hostname that always fails validation; the others are unaffected', async () => {
    const vars = sidecarEnv(env, {
      DOMAINS: 'fail.demo.test, fine.demo.test',
      // Let's Encrypt's production limits on this (staging) CA: 5 failed validations per hostname per hour.
      RATE_LIMITS: 'production',
      LOOP_TIME: '0',
      // This test forces in a loop on purpose: only the budget may stop it.
      RENEW_COOLDOWN: '0',
    });
    const daemon = startSidecar(['run'], vars);
    const done = collect(daemon, 150_000);
    try {
      // Wait for the first pass: fail.demo.test has failed once, fine.demo.test is issued.
      // Both lines, as asserted: the two certificates are worked on at once and
      // /status shows each as soon as it settles, in either order.
      const issued = /fine\.demo\.test\s+staging\s+yes/;
      const failed = /fail\.demo\.test .*ACME_VALIDATION_FAILED/;
      let status = await runSidecar(['status'], vars);
      const until = Date.now() + 60_000;
      while (!(issued.test(status.stdout) && failed.test(status.stdout)) && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 300));
        status = await runSidecar(['status'], vars);
      }
      assert.match(status.stdout, issued, status.stdout + status.stderr);
      assert.match(status.stdout, failed, status.stdout + status.stderr);
      // An operator keeps forcing it (skipping the backoff): the budget still holds.
      const answers: string[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await runSidecar(['renew', 'fail.demo.test'], vars);
        assert.equal(r.code, 1, r.stdout + r.stderr);
        answers.push(r.stdout);
      }
      assert.equal(
        answers.filter((a) => /ACME_VALIDATION_FAILED/.test(a)).length,
        4,
        answers.join('\n'),
      );
      assert.equal(
        answers.filter((a) => /RATE_BUDGET_EXCEEDED/.test(a)).length,
        2,
        answers.join('\n'),
      );
      assert.match(
        answers[5] ?? '',
        /5 validations of fail\.demo\.test .* failed in the last hour \(the limit is 5\); next possible at /,
      );
      // fine.demo.test can still be forced: its budget is its own.
      const fine = await runSidecar(['renew', 'fine.demo.test'], vars);
      assert.equal(fine.code, 0, fine.stdout + fine.stderr);
    } finally {
      daemon.kill('SIGTERM');
    }
    const r = await done;
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const orders = r.logs.filter((l) => l.message === 'ordering certificate');
    assert.equal(
      orders.filter((l) => l.cert === 'fail.demo.test').length,
      5,
      'five orders reached the CA',
    );
    assert.equal(
      orders.filter((l) => l.cert === 'fine.demo.test').length,
      2,
      'issued, then forced once',
    );
    // The budget persisted next to the account.
    const { readdir } = await import('node:fs/promises');
    const acme = await readdir(path.join(env.certDir, 'acme'));
    assert.ok(acme.length > 0);
  });
});
