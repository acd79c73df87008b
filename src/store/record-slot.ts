import { PHASES } from '../domain/types.js';
import type { RecordSlot } from '../lifecycle/platform-memory.js';
import { storedKey } from './keys.js';
import { storedCertKind } from './record-kinds.js';
import type { RecordKind, RecordReader } from './records.js';
import type { CertStore } from './store.js';

/**
 * One record of `kind` at `key`, read through the RecordReader (a corrupt
 * one is kept aside and reported as STORE_CORRUPT; the caller applies the
 * kind's safe default) and written as JSON. Works on any CertStore, so on
 * etcd in cluster mode as well.
 */
export function recordSlot<T>(
  store: Pick<CertStore, 'load' | 'store'>,
  records: Pick<RecordReader, 'inspect' | 'parse'>,
  key: string,
  kind: RecordKind<T>,
): RecordSlot<T> {
  return {
    async load({ persist }) {
      if (persist) {
        const got = await records.inspect(key, kind);
        return got.state === 'ok' ? got : { state: got.state };
      }
      // Dry runs: named as corrupt, not kept aside.
      const raw = await store.load(key);
      if (raw === undefined) return { state: 'missing' };
      const parsed = records.parse(raw, kind);
      return parsed.ok ? { state: 'ok', value: parsed.value } : { state: 'corrupt' };
    },
    async save(value) {
      await store.store(key, JSON.stringify(value));
    },
  };
}

/**
 * Every certificate the store holds, by name, with its hostnames and
 * profile: from its newest valid phase (production, then staging, then
 * self-signed). Corrupt records are reported by the reader and skipped.
 */
export async function storedCertificates(
  store: Pick<CertStore, 'list'>,
  records: Pick<RecordReader, 'read'>,
): Promise<{ name: string; domains: string[]; profile?: string }[]> {
  const out: { name: string; domains: string[]; profile?: string }[] = [];
  for (const name of await store.list('certs')) {
    for (const phase of [...PHASES].reverse()) {
      let key: string;
      try {
        key = storedKey(name, phase);
      } catch {
        break; // not a certificate name (something else under certs/)
      }
      const cert = await records.read(key, storedCertKind(phase), { cert: name });
      if (!cert) continue;
      out.push({
        name,
        domains: [...cert.meta.domains],
        ...(cert.meta.profile !== undefined && { profile: cert.meta.profile }),
      });
      break;
    }
  }
  return out;
}
