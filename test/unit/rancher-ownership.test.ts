// Who owns a certificate in Rancher: the description records the owning
// certificate name, and a managed certificate another name owns is never
// overwritten. Against the contract-faithful fake Cattle API.
import assert from 'node:assert/strict';
import { startFakeCattle, type FakeCattle } from '../../devenv/fake-cattle.js';
import { SelfSignedIssuer } from '../../src/acme/self-signed-issuer.js';
import { describeBundle } from '../../src/util/x509.js';
import { systemClock } from '../../src/lifecycle/clock.js';
import { CattleClient } from '../../src/platform/rancher/cattle-client.js';
import {
  ownerDescription,
  parseOwner,
  RancherPlatform,
  type RancherOwner,
} from '../../src/platform/rancher/rancher-platform.js';
import { silentLogger } from '../../src/util/log.js';

describe('rancher: certificate ownership', () => {
  describe('parseOwner', () => {
    const cases: { name: string; description: string | null; want: RancherOwner }[] = [
      {
        name: 'reads the owner this sidecar records',
        description: ownerDescription('production', ['shop.example.com'], 'shop'),
        want: { kind: 'owned', name: 'shop' },
      },
      {
        name: 'takes a description written before owner= as legacy',
        description:
          'staging certificate for a.example.com (managed-by=acme-sidecar; changes are overwritten)',
        want: { kind: 'legacy' },
      },
      {
        name: 'does not take the marker as a substring of someone else’s text',
        description: 'mine, NOT managed-by=acme-sidecar, do not touch',
        want: { kind: 'foreign' },
      },
      {
        name: 'does not take a marker with text after it',
        description: `${ownerDescription('production', ['a.example.com'], 'a')} extra`,
        want: { kind: 'foreign' },
      },
      {
        name: 'does not take an owner that is not a certificate name',
        description:
          'production certificate for a (managed-by=acme-sidecar owner=../x; changes are overwritten)',
        want: { kind: 'foreign' },
      },
      { name: 'has no owner without a description', description: null, want: { kind: 'foreign' } },
    ];
    for (const c of cases) {
      it(c.name, () => assert.deepEqual(parseOwner(c.description), c.want));
    }
  });

  describe('RancherPlatform against the fake Cattle API', () => {
    let fake: FakeCattle;
    let platform: RancherPlatform;

    before(async () => {
      fake = await startFakeCattle();
      platform = new RancherPlatform(
        new CattleClient({
          url: fake.url,
          accessKey: fake.accessKey,
          secretKey: fake.secretKey,
          timeoutMs: 2000,
          attempts: 1,
          log: silentLogger,
        }),
        { domains: async () => '', log: silentLogger, transitionTimeoutMs: 10_000 },
      );
    });
    after(async () => {
      await fake?.close();
    });

    async function stored(name: string, domains: string[]) {
      const bundle = await new SelfSignedIssuer(systemClock).issue(
        { name, domains, source: 't' },
        'ecdsa-p256',
      );
      const meta = describeBundle(bundle, {
        name,
        phase: 'production',
        directoryUrl: 'https://ca.test/dir',
        keyType: 'ecdsa-p256',
        issuedAt: new Date(),
      });
      return { meta, bundle };
    }

    it('records its own name as the owner, and then overwrites its own certificate', async () => {
      const first = await stored('own.example.com', ['own.example.com']);
      await platform.push(first);
      const copy = await platform.read('own.example.com');
      assert.equal(copy?.ours, true);
      const rec = fake.certificates().find((c) => c.name === 'own.example.com');
      assert.match(String(rec?.description), /\(managed-by=acme-sidecar owner=own\.example\.com;/);
      const second = await stored('own.example.com', ['own.example.com']);
      await platform.push(second, copy);
      const after = fake.certificates().find((c) => c.name === 'own.example.com');
      assert.equal(after?.cert, second.bundle.cert);
    });

    it('does not overwrite a managed certificate that another certificate name owns', async () => {
      const other = await stored('other', ['shop.example.com']);
      fake.addCertificate({
        name: 'shop',
        cert: other.bundle.cert,
        key: other.bundle.privkey,
        description: ownerDescription('production', ['shop.example.com'], 'other'),
      });
      const copy = await platform.read('shop');
      assert.deepEqual([copy?.ours, copy?.ownedBy], [false, 'other']);
      const mine = await stored('shop', ['shop.example.com']);
      await assert.rejects(platform.push(mine, copy), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'PLATFORM_CONFLICT');
        assert.match(err.message, /managed by acme-sidecar for the certificate other, not shop/);
        return true;
      });
      const rec = fake.certificates().find((c) => c.name === 'shop');
      assert.equal(rec?.cert, other.bundle.cert, 'left as it was');
    });

    it('does not overwrite a certificate whose description only mentions the marker', async () => {
      const theirs = await stored('theirs', ['theirs.example.com']);
      fake.addCertificate({
        name: 'theirs.example.com',
        cert: theirs.bundle.cert,
        key: theirs.bundle.privkey,
        description: 'hand-made; not managed-by=acme-sidecar',
      });
      const copy = await platform.read('theirs.example.com');
      assert.equal(copy?.ours, false);
      const mine = await stored('theirs.example.com', ['theirs.example.com']);
      await assert.rejects(platform.push(mine, copy), { code: 'PLATFORM_CONFLICT' });
      const rec = fake.certificates().find((c) => c.name === 'theirs.example.com');
      assert.equal(rec?.cert, theirs.bundle.cert);
    });
  });
});
