// PowerDNS Authoritative (Debian's pdns-server with pdns-backend-sqlite3) on
// loopback: DNS on one port, its HTTP API with a key on another, and one
// zone created through that API, with a wildcard A to 127.0.0.1.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import axios from 'axios';
import {
  freePorts,
  pidListensOn,
  spawnManaged,
  waitUntilReady,
  type ManagedProcess,
} from './proc.js';

export const PDNS_BIN = '/usr/sbin/pdns_server';
export const PDNS_SQLITE_SCHEMA = '/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql';

export interface PdnsOptions {
  dir: string;
  /** Without trailing dot. Default `pdns.test`. */
  zone?: string;
}

export interface PdnsInstance {
  process: ManagedProcess;
  /** `127.0.0.1:<port>`: DNS (for Pebble's -dnsserver and DNS_RESOLVERS). */
  address: string;
  port: number;
  /** `http://127.0.0.1:<port>`: PDNS_API_URL. */
  apiUrl: string;
  /** Secret. */
  apiKey: string;
  zone: string;
  stop(): Promise<void>;
}

export async function startPdns(opts: PdnsOptions): Promise<PdnsInstance> {
  for (const f of [PDNS_BIN, PDNS_SQLITE_SCHEMA]) {
    if (!existsSync(f)) {
      throw new Error(
        `${f} is missing: install the Debian packages pdns-server and pdns-backend-sqlite3`,
      );
    }
  }
  const zone = opts.zone ?? 'pdns.test';
  const dir = opts.dir;
  await mkdir(dir, { recursive: true });
  const [port, apiPort] = (await freePorts(2)) as [number, number];
  const apiKey = randomBytes(24).toString('base64url');
  const db = path.join(dir, 'pdns.sqlite3');
  execFileSync('/usr/bin/sqlite3', [db], { input: execFileSync('cat', [PDNS_SQLITE_SCHEMA]) });
  await writeFile(
    path.join(dir, 'pdns.conf'),
    [
      'launch=gsqlite3',
      `gsqlite3-database=${db}`,
      'local-address=127.0.0.1',
      `local-port=${port}`,
      'api=yes',
      `api-key=${apiKey}`,
      'webserver=yes',
      'webserver-address=127.0.0.1',
      `webserver-port=${apiPort}`,
      'webserver-allow-from=127.0.0.0/8',
      `socket-dir=${dir}`,
      'guardian=no',
      'daemon=no',
      'disable-syslog=yes',
      'write-pid=no',
      // Answers change at once: no packet or query cache between a write and a read.
      'cache-ttl=0',
      'negquery-cache-ttl=0',
      'query-cache-ttl=0',
      'zone-cache-refresh-interval=0',
      '',
    ].join('\n'),
  );
  const logPath = path.join(dir, 'pdns.log');
  const proc = spawnManaged('pdns_server', PDNS_BIN, [`--config-dir=${dir}`], { logPath });
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const api = axios.create({
    baseURL: `${apiUrl}/api/v1/servers/localhost`,
    headers: { 'X-API-Key': apiKey },
    validateStatus: () => true,
    timeout: 5000,
  });
  await waitUntilReady(
    proc,
    async () => {
      if (!pidListensOn(proc.pid, port) || !pidListensOn(proc.pid, apiPort)) return false;
      const res = await api.get('').catch(() => undefined);
      return res?.status === 200;
    },
    `pdns_server API at ${apiUrl}`,
  );
  const created = await api.post('/zones', {
    name: `${zone}.`,
    kind: 'Native',
    nameservers: [`ns.${zone}.`],
    rrsets: [
      {
        name: `ns.${zone}.`,
        type: 'A',
        ttl: 5,
        changetype: 'REPLACE',
        records: [{ content: '127.0.0.1', disabled: false }],
      },
      {
        name: `*.${zone}.`,
        type: 'A',
        ttl: 5,
        changetype: 'REPLACE',
        records: [{ content: '127.0.0.1', disabled: false }],
      },
    ],
  });
  if (created.status !== 201) {
    await proc.stop();
    throw new Error(
      `creating zone ${zone} through the PowerDNS API: HTTP ${created.status} ${JSON.stringify(created.data)}`,
    );
  }
  return {
    process: proc,
    address: `127.0.0.1:${port}`,
    port,
    apiUrl,
    apiKey,
    zone,
    stop: () => proc.stop(),
  };
}
