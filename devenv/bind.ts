// BIND 9 (Debian's `named`) on loopback, authoritative for a test zone, for
// DNS-01 against a real RFC 2136 server. Facts that worked here are in
// ../shared/docs/test-env.md ("DNS-01 against BIND 9").
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  freePort,
  pidListensOn,
  spawnManaged,
  waitUntilReady,
  type ManagedProcess,
} from './proc.js';

export const NAMED_BIN = '/usr/sbin/named';
export const NSUPDATE_BIN = '/usr/bin/nsupdate';

export interface BindOptions {
  /** Directory for the config, zones, journal and log (created). */
  dir: string;
  /** The zone, without trailing dot. Default `test`. */
  zone?: string;
  /**
   * Names (in `zone`) whose `_acme-challenge.<name>` TXT the key may update,
   * one `update-policy` grant each: the key can change nothing else.
   */
  acmeNames: readonly string[];
  /**
   * A subtree of `zone` whose every TXT the key may update: the target of
   * CNAME-delegated challenges (the acme-dns pattern). Default
   * `validation.<zone>`. A subtree, not a zone of its own: BIND, not
   * recursing, follows a CNAME only inside one zone, and Pebble reads the
   * TXT from the answer it gets.
   */
  validationZone?: string;
  /**
   * Names whose `_validation-persist.<name>` TXT (dns-persist-01) the key
   * may set: what an operator does once by hand.
   */
  persistNames?: readonly string[];
  /** Extra records for the main zone, in zone-file syntax (relative or absolute owners). */
  extraRecords?: readonly string[];
  /** TSIG key name (no trailing dot). Default `acme-lab-key`. */
  keyName?: string;
}

export interface BindInstance {
  process: ManagedProcess;
  port: number;
  /** `127.0.0.1:<port>`: RFC2136_NAMESERVER, DNS_RESOLVERS and Pebble's -dnsserver. */
  address: string;
  zone: string;
  validationZone: string;
  keyName: string;
  /** `hmac-sha256`, as BIND and nsupdate spell it. */
  algorithm: string;
  /** Base64 secret of the TSIG key. Secret. */
  secret: string;
  logPath: string;
  stop(): Promise<void>;
}

/** A fresh TSIG secret from BIND's own tsig-keygen (base64 of 32 random bytes). */
function tsigSecret(keyName: string): string {
  const out = execFileSync('/usr/sbin/tsig-keygen', ['-a', 'hmac-sha256', keyName], {
    encoding: 'utf8',
  });
  const m = /secret "([^"]+)"/.exec(out);
  if (!m?.[1]) throw new Error(`tsig-keygen printed no secret: ${out}`);
  return m[1];
}

function zoneFile(zone: string, records: readonly string[]): string {
  return [
    '$TTL 5',
    `@ IN SOA ns.${zone}. hostmaster.${zone}. 1 60 60 3600 5`,
    `@ IN NS ns.${zone}.`,
    // The zone does not load without an address for its NS.
    `ns IN A 127.0.0.1`,
    // Every other name answers 127.0.0.1, so HTTP-01 reaches the test nginx.
    `* IN A 127.0.0.1`,
    ...records,
    '',
  ].join('\n');
}

export async function startBind(opts: BindOptions): Promise<BindInstance> {
  if (!existsSync(NAMED_BIN)) {
    throw new Error(`${NAMED_BIN} is missing: install the Debian package bind9`);
  }
  const zone = opts.zone ?? 'test';
  const validationZone = opts.validationZone ?? `validation.${zone}`;
  const keyName = opts.keyName ?? 'acme-lab-key';
  const dir = opts.dir;
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const secret = tsigSecret(keyName);
  const grants = opts.acmeNames
    .map((n) => `    grant ${keyName}. name _acme-challenge.${n}. TXT;`)
    .concat(
      (opts.persistNames ?? []).map(
        (n) => `    grant ${keyName}. name _validation-persist.${n}. TXT;`,
      ),
    )
    .join('\n');
  const conf = `
options {
  directory "${dir}";
  pid-file "${dir}/named.pid";
  session-keyfile "${dir}/session.key";
  managed-keys-directory "${dir}";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  notify no;
};
controls { };
key "${keyName}." { algorithm hmac-sha256; secret "${secret}"; };
zone "${zone}." {
  type primary;
  file "${dir}/${zone}.zone";
  update-policy {
${grants}
    grant ${keyName}. subdomain ${validationZone}. TXT;
  };
};
`;
  await writeFile(path.join(dir, 'named.conf'), conf);
  await writeFile(path.join(dir, `${zone}.zone`), zoneFile(zone, opts.extraRecords ?? []));
  const logPath = path.join(dir, 'named.log');
  // -g: foreground, log to stderr; -u is not given (runs as whoever we are).
  const proc = spawnManaged('named', NAMED_BIN, ['-g', '-c', path.join(dir, 'named.conf')], {
    logPath,
  });
  await waitUntilReady(
    proc,
    async () => {
      if (!pidListensOn(proc.pid, port)) return false;
      try {
        const out = execFileSync(
          '/usr/bin/dig',
          ['+short', '+time=1', '+tries=1', '-p', String(port), '@127.0.0.1', `ns.${zone}`, 'A'],
          { encoding: 'utf8' },
        );
        return out.trim() === '127.0.0.1';
      } catch {
        return false;
      }
    },
    `named answering for ${zone}. on 127.0.0.1:${port}`,
  );
  return {
    process: proc,
    port,
    address: `127.0.0.1:${port}`,
    zone,
    validationZone,
    keyName,
    algorithm: 'hmac-sha256',
    secret,
    logPath,
    stop: () => proc.stop(),
  };
}

/** TXT values at `name` as BIND answers them now (dig), for assertions. */
export function digTxt(bind: Pick<BindInstance, 'port'>, name: string): string[] {
  const out = execFileSync(
    '/usr/bin/dig',
    ['+short', '+time=2', '+tries=2', '-p', String(bind.port), '@127.0.0.1', name, 'TXT'],
    { encoding: 'utf8' },
  );
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('"'))
    .map((l) => l.slice(1, -1));
}
