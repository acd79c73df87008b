/**
 * Where the sidecar is told to connect, parsed once for both the config
 * schema (startup validation) and the adapters that connect (deployment
 * check, webhook hook).
 */
import { isIP } from 'node:net';
import { SidecarError } from './errors.js';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/** A DNS name as resolvers take it (single labels such as `nginx` and `_` allowed). */
export const RESOLVABLE_NAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?)*$/i;

/**
 * Parses a comma-separated `host:port` list (`nginx:443, 10.0.0.5:8443,
 * [fd00::5]:443`). Empty entries are ignored, so `''` is no endpoint.
 * Throws a CONFIG_INVALID SidecarError naming the bad entry and the form
 * expected; the config layer adds the variable's name.
 */
export function parseEndpoints(s: string): Endpoint[] {
  const endpoints: Endpoint[] = [];
  for (const raw of s.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    endpoints.push(parseEndpoint(entry));
  }
  return endpoints;
}

function parseEndpoint(entry: string): Endpoint {
  const bad = (why: string) =>
    new SidecarError(
      'CONFIG_INVALID',
      `${JSON.stringify(entry)}: ${why}; expected host:port such as nginx:443, 10.0.0.5:443 or [fd00::5]:443`,
    );
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([^:]*)$/.exec(entry);
  if (m === null) {
    if (/^[^[]*:.*:/.test(entry)) throw bad('an IPv6 address must be in brackets');
    if (!entry.includes(':')) throw bad('the port is missing');
    throw bad('not host:port');
  }
  const [, v6, name, portText = ''] = m;
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw bad(`port ${JSON.stringify(portText)} is not 1-65535`);
  }
  const port = Number(portText);
  if (v6 !== undefined) {
    if (isIP(v6) !== 6) throw bad(`${JSON.stringify(v6)} is not an IPv6 address`);
    return { host: v6, port };
  }
  const host = name ?? '';
  if (host === '') throw bad('the host is missing');
  if (isIP(host) !== 4 && !RESOLVABLE_NAME.test(host)) {
    throw bad(`${JSON.stringify(host)} is not an IPv4 address or host name`);
  }
  return { host: host.toLowerCase(), port };
}

/** Why `url` cannot be a webhook URL, or undefined if it can (for config validation). */
export function webhookUrlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'expected an absolute http:// or https:// URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    return 'expected an http:// or https:// URL';
  }
  if (u.hostname === '') return 'the URL has no host';
  return undefined;
}

/** `host:port` with a port 1-65535 and an IPv4, a bracketed IPv6 or a resolvable name. */
export function isHostPort(s: string): boolean {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s);
  if (m === null) return false;
  const [, v6, host = '', port = ''] = m;
  const portOk = Number(port) >= 1 && Number(port) <= 65535;
  if (v6 !== undefined) return portOk && isIP(v6) === 6;
  return portOk && (isIP(host) === 4 || RESOLVABLE_NAME.test(host));
}

export const STATUS_ADDRESS_DEFAULT = '127.0.0.1:8080';
export const STATUS_ADDRESS_EXPECTED =
  'expected host:port such as 0.0.0.0:8080 or 127.0.0.1:9090, or off';

/**
 * STATUS_ADDRESS: `off`, or where the status server listens; undefined when
 * malformed. Here rather than in the config schema so that `acme-sidecar
 * healthcheck`, which needs only this setting, starts without loading the
 * whole configuration (zod and every validator: most of its start-up time).
 */
export function parseStatusAddress(v: string): { host: string; port: number } | 'off' | undefined {
  if (v.toLowerCase() === 'off') return 'off';
  if (!isHostPort(v)) return undefined;
  const i = v.lastIndexOf(':');
  return { host: v.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(v.slice(i + 1)) };
}
