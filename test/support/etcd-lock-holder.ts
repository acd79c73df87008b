// Child process for the etcd store tests: takes a lock, says so on stdout,
// then waits to be killed (its lease dies with it).
//   ETCD_ENDPOINTS=... CLUSTER=... KEYRING_B64=... LOCK=... TTL=... tsx etcd-lock-holder.ts
import { Etcd3 } from 'etcd3';
import { Keyring } from '../../src/store/sealed-value.js';
import { EtcdCertStore } from '../../src/store/etcd-store.js';

const env = (name: string): string => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};

const client = new Etcd3({ hosts: env('ETCD_ENDPOINTS').split(',') });
const store = new EtcdCertStore({
  client,
  clusterName: env('CLUSTER'),
  keyring: Keyring.parse(env('KEYRING_B64')),
  leaseTtlSeconds: Number(env('TTL')),
  nodeName: 'lock-holder',
});
await store.lock(env('LOCK'), { timeoutMs: 10_000 });
process.stdout.write('locked\n');
// Keep the process (and the lease's keep-alive) running until killed.
setInterval(() => undefined, 60_000);
