// AcmeIssuer and profiles (issue 12, item 2), against a minimal CA on
// loopback: the newOrder payload carries `profile`, and a profile the
// directory's meta.profiles lacks (or any, when it lists none) is refused
// with ACME_PROFILE_INVALID before an order is placed.
import assert from 'node:assert/strict';
import { SidecarError } from '../../src/domain/errors.js';
import type { CertSpec } from '../../src/domain/types.js';
import { issueAgainstNewOrderCa, type NewOrderRun } from '../support/new-order-ca.js';

describe('acme: profiles on newOrder', function () {
  this.timeout(30_000);

  function issue(
    meta: Record<string, unknown> | undefined,
    spec: Partial<CertSpec>,
  ): Promise<NewOrderRun> {
    return issueAgainstNewOrderCa({
      phase: 'staging',
      ...(meta && { meta }),
      spec: { name: 'a', domains: ['a.test'], source: 'test', ...spec },
    });
  }

  const OFFERED = { profiles: { classic: '90 days', shortlived: '160 hours' } };

  it('names the profile in the newOrder payload when it is on offer', async () => {
    const { newOrders } = await issue(OFFERED, {
      profile: 'shortlived',
      profileFrom: 'ACME_PROFILE',
    });
    assert.deepEqual(newOrders, [
      { identifiers: [{ type: 'dns', value: 'a.test' }], profile: 'shortlived' },
    ]);
  });

  it('sends no profile field when none is asked for', async () => {
    const { newOrders } = await issue(OFFERED, {});
    assert.deepEqual(newOrders, [{ identifiers: [{ type: 'dns', value: 'a.test' }] }]);
  });

  it('refuses an unknown profile before any order, naming the setting, the value and the offer', async () => {
    const { err, newOrders, url } = await issue(OFFERED, {
      profile: 'tlsserver',
      profileFrom: 'ACME_PROFILE',
    });
    assert.deepEqual(newOrders, []);
    assert.ok(err instanceof SidecarError, String(err));
    assert.equal(err.code, 'ACME_PROFILE_INVALID');
    assert.equal(
      err.message,
      `ACME_PROFILE="tlsserver" is not a profile the CA at ${url} offers; it offers: classic (90 days), shortlived (160 hours)`,
    );
  });

  it('refuses any profile against a CA that lists none, naming the label that set it', async () => {
    const from = 'rancher:service/web(1s1):io.acme-sidecar.profile';
    const { err, newOrders, url } = await issue(undefined, {
      profile: 'classic',
      profileFrom: from,
    });
    assert.deepEqual(newOrders, []);
    assert.ok(err instanceof SidecarError, String(err));
    assert.equal(err.code, 'ACME_PROFILE_INVALID');
    assert.equal(
      err.message,
      `${from}="classic", but the CA at ${url} offers no profiles (its directory lists no meta.profiles): unset ${from}`,
    );
  });
});
