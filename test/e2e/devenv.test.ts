// End-to-end check of the local environment itself: real Pebble CAs, DNS and
// nginx on 127.0.0.1, and a real issuance through them with acme-client.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import acme from 'acme-client';
import {
  checkPrereqs,
  httpGet,
  httpsGet,
  pidAlive,
  startDevEnv,
  tlsServedCert,
  writeCertFiles,
  writeSelfSignedCert,
  type DevEnv,
} from '../../devenv/index.js';
import { PEBBLE_INSTALL_SCRIPT, startPebble } from '../../devenv/pebble.js';
import { freePorts } from '../../devenv/proc.js';

/** Certificates from the production Pebble live this long (seconds). */
const SHORT_VALIDITY = 300;

interface Issued {
  certPem: string;
  keyPem: string;
  chain: X509Certificate[];
}

/** Issue a certificate through HTTP-01: token files in the env's webroot, served by nginx. */
async function issue(env: DevEnv, directoryUrl: string, domains: string[]): Promise<Issued> {
  const client = new acme.Client({
    directoryUrl,
    accountKey: await acme.crypto.createPrivateEcdsaKey(),
    backoffMin: 100,
    backoffMax: 1000,
  });
  const [key, csr] = await acme.crypto.createCsr(
    { commonName: domains[0], altNames: domains },
    await acme.crypto.createPrivateEcdsaKey(),
  );
  const challengeDir = path.join(env.webroot, '.well-known', 'acme-challenge');
  const certPem = await client.auto({
    csr,
    termsOfServiceAgreed: true,
    challengePriority: ['http-01'],
    // acme-client's self-check uses the system resolver and port 80; the CA's
    // own validation through nginx is what this test is about.
    skipChallengeVerification: true,
    challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
      // 0644: nginx workers run as nobody.
      await writeFile(path.join(challengeDir, challenge.token), keyAuthorization, { mode: 0o644 });
    },
    challengeRemoveFn: async (_authz, challenge) => {
      await rm(path.join(challengeDir, challenge.token), { force: true });
    },
  });
  const chain = acme.crypto.splitPemChain(certPem).map((p) => new X509Certificate(p));
  return { certPem, keyPem: key.toString(), chain };
}

/**
 * Issue through HTTP-01 with an order that names `profile` (Pebble 2.9's
 * profiles): acme-client's newOrder passes fields it does not know through.
 */
async function issueWithProfile(
  env: DevEnv,
  directoryUrl: string,
  domain: string,
  profile: string,
): Promise<{ orderProfile: unknown; chain: X509Certificate[] }> {
  const client = new acme.Client({
    directoryUrl,
    accountKey: await acme.crypto.createPrivateEcdsaKey(),
    backoffMin: 100,
    backoffMax: 1000,
  });
  await client.createAccount({ termsOfServiceAgreed: true });
  const request = { identifiers: [{ type: 'dns', value: domain }], profile };
  const order = await client.createOrder(request);
  const challengeDir = path.join(env.webroot, '.well-known', 'acme-challenge');
  for (const authz of await client.getAuthorizations(order)) {
    if (authz.status === 'valid') continue; // Pebble reuses some authorizations
    const challenge = authz.challenges.find((c) => c.type === 'http-01');
    assert.ok(challenge, 'an http-01 challenge');
    const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
    await writeFile(path.join(challengeDir, challenge.token), keyAuthorization, { mode: 0o644 });
    await client.completeChallenge(challenge);
    await client.waitForValidStatus(challenge);
  }
  const [, csr] = await acme.crypto.createCsr(
    { altNames: [domain] },
    await acme.crypto.createPrivateEcdsaKey(),
  );
  const finalized = await client.finalizeOrder(order, csr);
  const certPem = await client.getCertificate(finalized);
  return {
    orderProfile: (order as unknown as Record<string, unknown>).profile,
    chain: acme.crypto.splitPemChain(certPem).map((p) => new X509Certificate(p)),
  };
}

/** True if `chain` (leaf first) verifies link by link up to `rootPem`. */
function chainVerifies(chain: X509Certificate[], rootPem: string): boolean {
  const root = new X509Certificate(rootPem);
  const links = [...chain, root];
  for (let i = 0; i + 1 < links.length; i++) {
    const child = links[i]!;
    const parent = links[i + 1]!;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) return false;
  }
  return root.verify(root.publicKey); // self-signed root
}

describe('devenv (real Pebble, challtestsrv and nginx on loopback)', function () {
  this.timeout(60000);
  let env: DevEnv;
  let savedAgent: unknown;

  before(async function () {
    const pre = checkPrereqs();
    if (!pre.ok) throw new Error(pre.message);
    env = await startDevEnv({ production: { certificateValidityPeriod: SHORT_VALIDITY } });
    // acme-client sends everything through its shared axios instance. Keep
    // the system roots (NODE_EXTRA_CA_CERTS is already in use) and add ours.
    savedAgent = acme.axios.defaults.httpsAgent;
    acme.axios.defaults.httpsAgent = new https.Agent({ ca: [...tls.rootCertificates, env.caPem] });
  });

  after(async function () {
    acme.axios.defaults.httpsAgent = savedAgent;
    await env?.stop();
  });

  it('serves both ACME directories over HTTPS trusted via the throwaway CA', async function () {
    for (const ca of [env.staging, env.production]) {
      assert.match(ca.directoryUrl, /^https:\/\/127\.0\.0\.1:\d+\/dir$/);
      const res = await httpsGet(ca.directoryUrl, env.caPem);
      assert.equal(res.status, 200);
      const dir = JSON.parse(res.body) as Record<string, unknown>;
      assert.equal(typeof dir.newOrder, 'string');
    }
    assert.notEqual(env.staging.directoryUrl, env.production.directoryUrl);
  });

  it('runs Pebble 2.9: renewalInfo in the directory and one profile, `default`', async function () {
    assert.equal(env.pebbleBinaries.source, 'go');
    for (const ca of [env.staging, env.production]) {
      const dir = JSON.parse((await httpsGet(ca.directoryUrl, env.caPem)).body) as {
        renewalInfo?: string;
        meta?: { profiles?: Record<string, string> };
      };
      assert.match(dir.renewalInfo ?? '', /\/draft-ietf-acme-ari-03\/renewalInfo$/);
      // A single profile: an order that names none cannot get a random lifetime.
      assert.deepEqual(Object.keys(dir.meta?.profiles ?? {}), ['default']);
    }
  });

  it('gives the two Pebbles different roots', async function () {
    const [a, b] = await Promise.all([env.staging.getRootPem(), env.production.getRootPem()]);
    assert.match(a, /BEGIN CERTIFICATE/);
    assert.match(b, /BEGIN CERTIFICATE/);
    assert.notEqual(a, b);
    assert.match(await env.staging.getIntermediatePem(), /BEGIN CERTIFICATE/);
  });

  it('serves a webroot token as text/plain for any Host, and 404 for a missing one', async function () {
    const dir = path.join(env.webroot, '.well-known', 'acme-challenge');
    await mkdir(dir, { recursive: true, mode: 0o755 });
    await writeFile(path.join(dir, 'tok-123'), 'tok-123.thumbprint', { mode: 0o644 });
    const ok = await httpGet(
      env.ports.http,
      'any-name.example',
      '/.well-known/acme-challenge/tok-123',
    );
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'tok-123.thumbprint');
    assert.match(String(ok.headers['content-type']), /^text\/plain/);

    const missing = await httpGet(env.ports.http, 'other.test', '/.well-known/acme-challenge/nope');
    assert.equal(missing.status, 404);
    const elsewhere = await httpGet(env.ports.http, 'other.test', '/');
    assert.equal(elsewhere.status, 404);
  });

  it('issues a real certificate from the staging Pebble that chains to its root', async function () {
    const { chain } = await issue(env, env.staging.directoryUrl, ['app.devenv.test']);
    assert.ok(chain.length >= 2, 'leaf and intermediate');
    const leaf = chain[0]!;
    assert.match(leaf.subjectAltName ?? '', /DNS:app\.devenv\.test/);
    assert.ok(chainVerifies(chain, await env.staging.getRootPem()), 'chains to staging root');
    assert.ok(!chainVerifies(chain, await env.production.getRootPem()), 'not to production');
    // Staging has Pebble's default validity (years), unlike production below.
    const days = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 86400e3;
    assert.ok(days > 30, `staging validity ${days} days`);
  });

  it('honours certificateValidityPeriod (short-lived certs from production)', async function () {
    const { chain } = await issue(env, env.production.directoryUrl, ['short.devenv.test']);
    assert.ok(chainVerifies(chain, await env.production.getRootPem()));
    const leaf = chain[0]!;
    const seconds = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 1000;
    assert.ok(Math.abs(seconds - SHORT_VALIDITY) <= 2, `validity ${seconds} s`);
  });

  it('configures profiles: an order naming one gets its lifetime', async function () {
    const dir = path.join(env.dir, 'profiles');
    await mkdir(dir, { recursive: true });
    const [listenPort, managementPort] = (await freePorts(2)) as [number, number];
    const pebble = await startPebble({
      name: 'profiles',
      dir,
      listenPort,
      managementPort,
      httpPort: env.ports.http,
      tlsPort: env.ports.tlsAlpn,
      dnsAddress: env.dns.dnsAddress,
      listenerCa: env.listenerCa,
      profiles: {
        default: { description: '5 years', validityPeriod: 157766400 },
        shortlived: { description: '5 minutes', validityPeriod: SHORT_VALIDITY },
      },
    });
    try {
      const directory = JSON.parse((await httpsGet(pebble.directoryUrl, env.caPem)).body) as {
        meta?: { profiles?: Record<string, string> };
      };
      assert.deepEqual(directory.meta?.profiles, {
        default: '5 years',
        shortlived: '5 minutes',
      });
      const { orderProfile, chain } = await issueWithProfile(
        env,
        pebble.directoryUrl,
        'profiled.devenv.test',
        'shortlived',
      );
      assert.equal(orderProfile, 'shortlived');
      assert.ok(chainVerifies(chain, await pebble.getRootPem()));
      const leaf = chain[0]!;
      const seconds = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 1000;
      assert.ok(Math.abs(seconds - SHORT_VALIDITY) <= 2, `validity ${seconds} s`);
    } finally {
      await pebble.stop();
    }
  });

  it("fails naming the install script when Pebble 2.9 is missing, never running Debian's 2.4", async function () {
    const saved = process.env.PEBBLE_BIN;
    process.env.PEBBLE_BIN = path.join(env.dir, 'no-such-pebble');
    try {
      const pre = checkPrereqs();
      assert.equal(pre.ok, false);
      assert.ok(pre.missing.includes(process.env.PEBBLE_BIN), pre.message);
      assert.ok(pre.message.includes(PEBBLE_INSTALL_SCRIPT), pre.message);
      await assert.rejects(startDevEnv(), (err: Error) =>
        err.message.includes(PEBBLE_INSTALL_SCRIPT),
      );
    } finally {
      if (saved === undefined) delete process.env.PEBBLE_BIN;
      else process.env.PEBBLE_BIN = saved;
    }
  });

  it('reloads nginx onto new certificates, chosen per SNI', async function () {
    // Placeholders first (what the sidecar writes before its first issuance).
    await writeSelfSignedCert(env.certDir, 'site-a', ['a.devenv.test']);
    await writeSelfSignedCert(env.certDir, 'site-b', ['b.devenv.test']);
    const servers = [
      { certName: 'site-a', serverNames: ['a.devenv.test'] },
      { certName: 'site-b', serverNames: ['b.devenv.test'] },
    ];
    // The env started HTTP-only; giving tlsServers turns the TLS servers on.
    await env.nginx.reload({ tlsServers: servers });
    const placeholderA = await tlsServedCert(env.ports.https, 'a.devenv.test');
    const placeholderB = await tlsServedCert(env.ports.https, 'b.devenv.test');
    assert.notEqual(placeholderA.fingerprint256, placeholderB.fingerprint256);

    // Real certificate for site-a, then reload: the next handshake sees it.
    const issued = await issue(env, env.staging.directoryUrl, ['a.devenv.test']);
    await writeCertFiles(env.certDir, 'site-a', issued.certPem, issued.keyPem);
    await env.nginx.reload();
    const servedA = await tlsServedCert(env.ports.https, 'a.devenv.test');
    assert.equal(servedA.serialNumber, issued.chain[0]!.serialNumber);
    assert.notEqual(servedA.serialNumber, placeholderA.serialNumber);
    // site-b untouched.
    const servedB = await tlsServedCert(env.ports.https, 'b.devenv.test');
    assert.equal(servedB.fingerprint256, placeholderB.fingerprint256);

    // The HTTP challenge server still works after reloads.
    const res = await httpGet(env.ports.http, 'a.devenv.test', '/.well-known/acme-challenge/x');
    assert.equal(res.status, 404);
  });

  it('rejects a reload whose certificate is missing, keeping the old config', async function () {
    await assert.rejects(
      env.nginx.reload({ tlsServers: [{ certName: 'no-such-cert', serverNames: ['x.test'] }] }),
      /nginx -t/,
    );
    // Still serving the previous certificates.
    await tlsServedCert(env.ports.https, 'b.devenv.test');
  });

  it('reports an early exit with the tail of the process log', async function () {
    // The staging Pebble's ports are taken, so this Pebble dies at once.
    const dir = path.join(env.dir, 'early-exit');
    await mkdir(dir, { recursive: true });
    const started = startPebble({
      name: 'doomed',
      dir,
      listenPort: env.ports.stagingAcme,
      managementPort: env.ports.stagingManagement,
      httpPort: env.ports.http,
      tlsPort: env.ports.tlsAlpn,
      dnsAddress: env.dns.dnsAddress,
      listenerCa: env.listenerCa,
    });
    // Never leave it running, even if it wrongly reports success.
    started.then((p) => p.stop()).catch(() => undefined);
    await assert.rejects(
      started,
      (err: Error) =>
        /exited early/.test(err.message) && /address already in use/.test(err.message),
    );
  });

  it('stop() ends every process it started and removes its temp dir', async function () {
    const pids = env.pids();
    // challtestsrv, 2 Pebbles, nginx master and at least one worker.
    assert.ok(pids.length >= 5, `pids ${pids.join(',')}`);
    assert.ok(pids.every(pidAlive));
    await env.stop();
    assert.deepEqual(pids.filter(pidAlive), [], 'no process left behind');
    await assert.rejects(mkdir(path.join(env.dir, 'x')), /ENOENT/);
  });
});

describe('devenv started with TLS servers', function () {
  this.timeout(60000);

  it('starts nginx with placeholder certificates chosen per SNI', async function () {
    const env = await startDevEnv({
      tlsServers: [
        { certName: 'one', serverNames: ['one.devenv.test'] },
        { certName: 'two', serverNames: ['two.devenv.test', 'www.two.devenv.test'] },
      ],
      placeholderCerts: true,
    });
    try {
      const one = await tlsServedCert(env.ports.https, 'one.devenv.test');
      const two = await tlsServedCert(env.ports.https, 'www.two.devenv.test');
      assert.match(new X509Certificate(one.pem).subjectAltName ?? '', /DNS:one\.devenv\.test/);
      assert.match(new X509Certificate(two.pem).subjectAltName ?? '', /DNS:www\.two\.devenv\.test/);
    } finally {
      await env.stop();
    }
  });
});
