/**
 * The reconciler's idle pass in-process, no CA: N settled certificates
 * (self-signed, recorded as the staging CA's) in a real file store and
 * live/, the daemon's watches on, and the CPU of each pass. Dev tool for
 * profiling (`node --cpu-prof --import tsx scripts/idle-profile.ts 1000`).
 */
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { SelfSignedIssuer } from '../src/acme/self-signed-issuer.js';
import { LiveDir } from '../src/deploy/live-dir.js';
import { watchLive } from '../src/deploy/live-watch.js';
import type { CertSpec } from '../src/domain/types.js';
import { FixedClock } from '../src/lifecycle/clock.js';
import { Reconciler } from '../src/reconcile/reconciler.js';
import { FsCertStore } from '../src/store/fs-store.js';
import { watchStore } from '../src/store/fs-watch.js';
import { storedKey } from '../src/store/keys.js';
import { PassReadCache } from '../src/store/pass-cache.js';
import { RecordReader } from '../src/store/records.js';
import { createLogger } from '../src/util/log.js';

const n = Number(process.argv[2] ?? 300);
const passes = Number(process.argv[3] ?? 5);
const NOW = new Date();
const STAGING = 'https://staging.test/dir';
const root = await fs.mkdtemp(join(tmpdir(), 'idle-profile-'));
const fsStore = new FsCertStore(root);
const live = new LiveDir(root);
const clock = new FixedClock(NOW);
const specs: CertSpec[] = [];
const issuer = new SelfSignedIssuer(new FixedClock(new Date(NOW.getTime() - 86400_000)));
for (let i = 0; i < n; i++) {
  const spec: CertSpec = { name: `i${i}.idle.test`, domains: [`i${i}.idle.test`], source: 'test' };
  specs.push(spec);
  const bundle = await issuer.issue(spec, 'ecdsa-p256');
  const leaf = new X509Certificate(bundle.cert);
  const meta = {
    name: spec.name,
    phase: 'staging' as const,
    domains: spec.domains,
    directoryUrl: STAGING,
    keyType: 'ecdsa-p256' as const,
    notBefore: new Date(leaf.validFrom).toISOString(),
    notAfter: new Date(leaf.validTo).toISOString(),
    serial: leaf.serialNumber.toUpperCase(),
    chainVerified: true,
    issuedAt: NOW.toISOString(),
  };
  await fsStore.store(storedKey(spec.name, 'staging'), JSON.stringify({ meta, bundle }), {
    secret: true,
  });
  await live.write(spec.name, bundle);
}
const store = new PassReadCache(fsStore);
const log = createLogger({ level: 'warn', format: 'json' });
const records = new RecordReader(store, clock, log);
const reconciler = new Reconciler({
  store,
  records,
  live,
  issuers: {
    'self-signed': new SelfSignedIssuer(clock),
    staging: {
      phase: 'staging',
      directoryUrl: STAGING,
      issue: () => Promise.reject(new Error('no orders')),
    },
    production: {
      phase: 'production',
      directoryUrl: 'https://prod.test/dir',
      issue: () => Promise.reject(new Error('no orders')),
    },
  },
  platform: {
    name: 'static',
    holdsCertificates: false,
    discover: () => Promise.resolve({ specs, problems: [] }),
    read: () => Promise.resolve(undefined),
    push: () => Promise.resolve(),
  },
  clock,
  log,
  settings: {
    target: 'staging',
    keyType: 'ecdsa-p256',
    directories: { staging: STAGING, production: 'https://prod.test/dir' },
  },
});
const watch = process.env.NO_WATCH
  ? undefined
  : await watchLive(
      root,
      () => undefined,
      () => undefined,
    );
live.follow(watch);
const feed = process.env.NO_WATCH ? undefined : watchStore(root);
if (feed) store.follow(feed);
const session = process.env.PROFILE ? new Session() : undefined;
for (let p = 1; p <= passes; p++) {
  if (p === 3 && session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
  }
  await new Promise<void>((r) => setImmediate(() => setImmediate(r)));
  const cpu = process.cpuUsage();
  const reads = store.reads;
  const t = performance.now();
  await store.begin();
  const st = await reconciler.reconcileAll(specs);
  store.end();
  const d = process.cpuUsage(cpu);
  console.log(
    `pass ${p}: ${n} certificates, ${st.filter((s) => s.ready).length} ready, ${((d.user + d.system) / 1000).toFixed(1)} ms CPU, ${(performance.now() - t).toFixed(0)} ms wall, ${store.reads - reads} store reads`,
  );
}
if (session && process.env.PROFILE) {
  const { profile } = await session.post('Profiler.stop');
  await fs.writeFile(process.env.PROFILE, JSON.stringify(profile));
}
watch?.close();
store.unfollow();
await fs.rm(root, { recursive: true, force: true });
