// AcmeIssuer and IP-address identifiers (RFC 8738; issue 12 item 4),
// against a minimal CA on loopback that answers newOrder as Let's Encrypt's
// Boulder does for an IP address under a profile other than shortlived
// (ra.go: rejectedIdentifier "Profile %q does not permit %s type
// identifiers"). Pebble 2.9 issues IP certificates under every profile, so
// this refusal cannot be had from it.
import assert from 'node:assert/strict';
import { configureAcmeHttp } from '../../src/acme/http.js';
import { SidecarError } from '../../src/domain/errors.js';
import type { CertSpec } from '../../src/domain/types.js';
import { issueAgainstNewOrderCa, type NewOrderRun } from '../support/new-order-ca.js';

describe('acme: IP identifiers on newOrder', function () {
  this.timeout(30_000);
  before(() => {
    // The problem documents reach the classification through our HTTP
    // adapter. The same per-request deadline as error-messages.test.ts: the
    // adapter is installed once per process, with the first caller's deadline.
    configureAcmeHttp({ timeoutMs: 400 });
  });

  /** Refuses ip identifiers unless the profile is shortlived, as Boulder does. */
  function issue(spec: CertSpec): Promise<NewOrderRun> {
    return issueAgainstNewOrderCa({
      phase: 'production',
      meta: { profiles: { classic: '90 days', tlsserver: '45 days', shortlived: '160 hours' } },
      spec,
      refuse: (order) =>
        order.identifiers.some((i) => i.type === 'ip') && order.profile !== 'shortlived'
          ? {
              type: 'rejectedIdentifier',
              detail: `Profile "${order.profile ?? 'classic'}" does not permit ip type identifiers`,
              status: 400,
            }
          : undefined,
    });
  }

  const spec = (domains: string[], profile?: string): CertSpec => ({
    name: 'x',
    domains,
    source: 'env:DOMAINS',
    ...(profile !== undefined && { profile, profileFrom: 'ACME_PROFILE' }),
  });

  it('sends an address as an ip identifier beside dns ones (RFC 8738 section 3)', async () => {
    const { newOrders } = await issue(
      spec(['www.example.com', '192.0.2.1', '2001:db8::1'], 'shortlived'),
    );
    assert.deepEqual(newOrders, [
      {
        identifiers: [
          { type: 'dns', value: 'www.example.com' },
          { type: 'ip', value: '192.0.2.1' },
          { type: 'ip', value: '2001:db8::1' },
        ],
        profile: 'shortlived',
      },
    ]);
  });

  it('turns a refusal of the address under classic into ACME_IP_REFUSED naming shortlived', async () => {
    const { err, newOrders } = await issue(spec(['192.0.2.1'], 'classic'));
    assert.equal(newOrders.length, 1);
    assert.ok(err instanceof SidecarError, String(err));
    assert.equal(err.code, 'ACME_IP_REFUSED');
    assert.equal(
      err.message,
      'the CA refused the IP address "192.0.2.1" under profile "classic" (rejectedIdentifier: Profile "classic" does not permit ip type identifiers); set ACME_PROFILE to "shortlived", the profile that issues IP-address certificates at Let\'s Encrypt (offered: classic, tlsserver, shortlived)',
    );
  });

  it('says so when no profile was named (the CA chose its default)', async () => {
    const { err } = await issue(spec(['192.0.2.1']));
    assert.ok(err instanceof SidecarError, String(err));
    assert.equal(err.code, 'ACME_IP_REFUSED');
    assert.match(err.message, /under its default profile/);
    assert.match(
      err.message,
      /set ACME_PROFILE \(or the io\.acme-sidecar\.profile label\) to "shortlived"/,
    );
  });

  it('leaves a refusal of an order without addresses to the usual classification', async () => {
    const { err } = await issue(spec(['www.example.com'], 'classic'));
    assert.ok(err instanceof SidecarError, String(err));
    assert.equal(err.code, 'ACME_UNAUTHORIZED', err.message);
  });
});
