// The Platform contract for RancherPlatform, against the contract-faithful
// fake Cattle API: every declaration is a service labelled io.acme-sidecar.domains.
import { startFakeCattle, type FakeCattle } from '../../devenv/fake-cattle.js';
import { freePort } from '../../devenv/proc.js';
import { CattleClient } from '../../src/platform/rancher/cattle-client.js';
import { DOMAINS_LABEL, RancherPlatform } from '../../src/platform/rancher/rancher-platform.js';
import { silentLogger } from '../../src/util/log.js';
import { platformContract } from './platform-contract.js';

let cattle: FakeCattle | undefined;

describe('RancherPlatform (fake Cattle API)', () => {
  after(async () => {
    await cattle?.close();
  });

  platformContract('rancher (fake Cattle API)', async () => {
    const fake = await startFakeCattle();
    cattle = fake;
    let domains = '';
    let added: string[] = [];
    let seq = 0;
    const client = (url: string) =>
      new CattleClient({
        url,
        accessKey: fake.accessKey,
        secretKey: fake.secretKey,
        timeoutMs: 2000,
        attempts: 1,
        log: silentLogger,
      });
    const closedPort = await freePort();
    return {
      platform: new RancherPlatform(client(fake.url), {
        domains: async () => domains,
        log: silentLogger,
        transitionTimeoutMs: 10_000,
      }),
      setDomains: (v) => {
        domains = v;
      },
      declare: async (entry) => {
        added.push(fake.addService({ name: `svc${++seq}`, labels: { [DOMAINS_LABEL]: entry } }).id);
      },
      reset: async () => {
        for (const id of added) fake.removeService(id);
        added = [];
        domains = '';
      },
      unreachable: () =>
        new RancherPlatform(client(`http://127.0.0.1:${closedPort}/v1`), {
          domains: async () => '',
          log: silentLogger,
        }),
      unreachableCode: 'PLATFORM_UNAVAILABLE',
    };
  });
});
