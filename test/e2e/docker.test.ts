// e2e: PLATFORM=docker end to end on loopback. A real dockerd, real Pebble
// and nginx (devenv), and the real sidecar daemon. A labelled container
// appears; the sidecar hears it on the event stream, issues its certificate
// into live/, and sends SIGHUP through the Engine API to the container
// labelled io.acme-sidecar.reload=true. No nginx image exists here, so that
// container (busybox, --pid host --network none) forwards the signal to the
// devenv's nginx master: the new certificate is served only if the whole
// chain works. Prints "container started -> certificate served". The
// container's io.acme-sidecar.profile label names the ACME profile of its
// order over ACME_PROFILE (issue 12): Pebble gives that profile's lifetime.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { importBusyboxImage, startDockerd, type DockerEngine } from '../../devenv/dockerd.js';
import { startDevEnv, tlsServedCert, type DevEnv } from '../../devenv/index.js';
import { DOMAINS_LABEL, PROFILE_LABEL } from '../../src/platform/labels.js';
import { storedKey } from '../../src/store/keys.js';
import { chainVerifiesTo } from '../../src/util/x509.js';
import { collect, sidecarEnv, startSidecar } from '../support/sidecar.js';

const IMAGE = 'acme-test/busybox:1';
const HOST = 'app.docker.test';
/** Two profiles, so the lifetime tells which one the order named. */
const PROFILES = {
  default: { description: '90 days', validityPeriod: 90 * 86_400 },
  short: { description: '1 day', validityPeriod: 86_400 },
};

describe('e2e: PLATFORM=docker (real dockerd, Pebble and nginx)', function () {
  this.timeout(180_000);
  let env: DevEnv | undefined;
  let engine: DockerEngine | undefined;

  before(async () => {
    // nginx serves a placeholder for HOST until the sidecar's certificate
    // arrives (the sidecar moves that directory aside: "left by another tool").
    [env, engine] = await Promise.all([
      startDevEnv({
        pebble: { profiles: PROFILES },
        tlsServers: [{ certName: HOST, serverNames: [HOST] }],
        placeholderCerts: true,
      }),
      startDockerd(),
    ]);
    await importBusyboxImage(engine, IMAGE);
  });
  after(async () => {
    await Promise.all([env?.stop(), engine?.stop()]);
  });

  it('issues the certificate of a container that appears, and reloads nginx through the reload-labelled container', async () => {
    if (!env || !engine) throw new Error('not started');
    const dev = env;
    const docker = engine;
    const nginxMaster = dev.nginx.process.pid;
    const forwarder = await docker.docker([
      'run',
      '-d',
      '--name',
      'nginx-reloader',
      '--network',
      'none',
      '--pid',
      'host',
      '--label',
      'io.acme-sidecar.reload=true',
      IMAGE,
      'sh',
      '-c',
      `trap 'kill -HUP ${nginxMaster} && echo reload' HUP; echo ready; while :; do sleep 0.1; done`,
    ]);
    assert.equal(forwarder.code, 0, forwarder.stderr);
    const reloads = async (): Promise<number> =>
      (await docker.docker(['logs', 'nginx-reloader'])).stdout
        .split('\n')
        .filter((l) => l === 'reload').length;

    const child = startSidecar(
      ['run'],
      sidecarEnv(dev, {
        PLATFORM: 'docker',
        DOCKER_HOST: docker.host,
        // The container's label overrides it.
        ACME_PROFILE: 'default',
        // Events, not the loop, must bring the new container in.
        LOOP_TIME: '600',
        LOG_LEVEL: 'debug',
      }),
    );
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const result = collect(child, 150_000);
    try {
      const waitFor = async (what: string, f: () => Promise<boolean>, ms = 60_000) => {
        const deadline = Date.now() + ms;
        while (!(await f())) {
          if (Date.now() > deadline || child.exitCode !== null) {
            throw new Error(`timed out waiting for ${what}\n${stderr.slice(-4000)}`);
          }
          await sleep(25);
        }
      };
      await waitFor(
        'the event stream and the first pass',
        async () =>
          stderr.includes('following Docker container events') &&
          stderr.includes('no certificates configured'),
      );
      const root = await dev.staging.getRootPem();
      const livePem = path.join(dev.certDir, 'live', HOST, 'fullchain.pem');

      const t0 = Date.now();
      const run = await docker.docker([
        'run',
        '-d',
        '--name',
        'app',
        '--network',
        'none',
        '--label',
        `${DOMAINS_LABEL}=${HOST}`,
        '--label',
        `${PROFILE_LABEL}=short`,
        IMAGE,
        'sleep',
        '100000',
      ]);
      assert.equal(run.code, 0, run.stderr);
      const started = Date.now();
      let issuedAt = 0;
      await waitFor(`${HOST} served with a certificate from the staging CA`, async () => {
        const fullchain = await readFile(livePem, 'utf8').catch(() => '');
        if (!fullchain || !chainVerifiesTo(fullchain, root)) return false;
        issuedAt ||= Date.now();
        const served = await tlsServedCert(dev.ports.https, HOST).catch(() => undefined);
        return served?.serialNumber === new X509Certificate(fullchain).serialNumber;
      });
      const served = Date.now();
      console.log(
        `      container started -> certificate served: ${served - t0} ms ` +
          `(docker run ${started - t0} ms, in live/ after ${issuedAt - t0} ms, served after the reload ${served - issuedAt} ms)`,
      );
      assert.ok(stderr.includes('docker: container app start'), 'a pass triggered by the event');
      assert.match(stderr, /sent SIGHUP so the server reloads its certificates/);
      // Startup reload, then one for the new certificate. Waited for, not read
      // once: the reloader's line reaches `docker logs` through dockerd's copy,
      // which may trail the nginx reload it follows.
      await waitFor('two reloads in the reloader log', async () => (await reloads()) >= 2, 10_000);
      // Ordered under the label's profile, not ACME_PROFILE's.
      const leaf = new X509Certificate(await readFile(livePem, 'utf8'));
      const lifetimeS = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 1000;
      assert.ok(
        Math.abs(lifetimeS - PROFILES.short.validityPeriod) <= 60,
        `lifetime ${lifetimeS} s, want the short profile's`,
      );
      const stored = JSON.parse(
        await readFile(path.join(dev.certDir, storedKey(HOST, 'staging')), 'utf8'),
      ) as { meta: { profile?: string } };
      assert.equal(stored.meta.profile, 'short');
    } finally {
      child.kill('SIGTERM');
    }
    const r = await result;
    assert.equal(r.code, 0, r.stderr.slice(-3000));
  });
});
