/**
 * The PowerDNS Authoritative HTTP API (`/api/v1`). Its PATCH replaces a
 * whole RRset, so a value is added by reading the set and writing it back
 * with the value in (and removed likewise); the zone is the longest zone
 * the server has that the name is in.
 */
import axios, { type AxiosInstance } from 'axios';
import { SidecarError } from '../../domain/errors.js';
import type { Logger } from '../../util/log.js';
import { CHALLENGE_TTL_SECONDS, type DnsProvider } from './provider.js';

export interface PdnsOptions {
  readonly apiUrl: string;
  /** Secret: sent as X-API-Key, never logged. */
  readonly apiKey: string;
  readonly serverId: string;
  readonly timeoutMs: number;
  readonly log: Logger;
}

interface RRset {
  name: string;
  type: string;
  ttl?: number;
  records?: { content: string; disabled?: boolean }[];
}

function dotted(name: string): string {
  return name.endsWith('.') ? name.toLowerCase() : `${name.toLowerCase()}.`;
}

/** TXT content as PowerDNS stores it: one quoted string (our values are base64url). */
function quoted(value: string): string {
  return `"${value}"`;
}

export class PowerDnsProvider implements DnsProvider {
  readonly name = 'pdns';
  private readonly http: AxiosInstance;

  constructor(private readonly opts: PdnsOptions) {
    this.http = axios.create({
      baseURL: `${opts.apiUrl.replace(/\/+$/, '')}/api/v1/servers/${encodeURIComponent(opts.serverId)}`,
      timeout: opts.timeoutMs,
      headers: { 'X-API-Key': opts.apiKey, Accept: 'application/json' },
      validateStatus: () => true,
      // Never follow a redirect with the key in a header.
      maxRedirects: 0,
    });
  }

  addTxt(fqdn: string, value: string): Promise<void> {
    return this.change(fqdn, (values) =>
      values.includes(quoted(value)) ? values : [...values, quoted(value)],
    );
  }

  removeTxt(fqdn: string, value: string): Promise<void> {
    return this.change(fqdn, (values) => values.filter((v) => v !== quoted(value)));
  }

  private fail(what: string, status: number | string, data?: unknown): SidecarError {
    const detail =
      data && typeof data === 'object' && 'error' in data && typeof data.error === 'string'
        ? `: ${data.error.slice(0, 300)}`
        : '';
    return new SidecarError(
      'DNS_PROVIDER_FAILED',
      `PowerDNS API (PDNS_API_URL) ${what}: ${status}${detail}${status === 401 || status === 403 ? ' (check PDNS_API_KEY)' : ''}`,
      { retryable: typeof status !== 'number' || status >= 500 || status === 429 },
    );
  }

  private async request<T>(
    method: 'get' | 'patch',
    url: string,
    what: string,
    data?: unknown,
  ): Promise<{ status: number; data: T }> {
    try {
      const res = await this.http.request<T>({ method, url, ...(data !== undefined && { data }) });
      return { status: res.status, data: res.data };
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'network error';
      throw this.fail(what, code);
    }
  }

  /** The zone (with dot) that holds `fqdn`: the longest of the server's zones that is a suffix. */
  private async zoneOf(fqdn: string): Promise<{ id: string; name: string }> {
    const name = dotted(fqdn);
    const labels = name.split('.').filter((l) => l !== '');
    for (let i = 0; i < labels.length - 1; i++) {
      const candidate = `${labels.slice(i).join('.')}.`;
      const res = await this.request<{ id: string; name: string }[]>(
        'get',
        `/zones?zone=${encodeURIComponent(candidate)}`,
        `looking up zone ${candidate}`,
      );
      if (res.status !== 200) throw this.fail(`looking up zone ${candidate}`, res.status, res.data);
      const zone = Array.isArray(res.data) ? res.data[0] : undefined;
      if (zone && typeof zone.id === 'string') return { id: zone.id, name: zone.name };
    }
    throw new SidecarError(
      'DNS_PROVIDER_FAILED',
      `PowerDNS (PDNS_API_URL, server ${this.opts.serverId}) has no zone that holds ${fqdn}`,
    );
  }

  private async change(fqdn: string, edit: (values: string[]) => string[]): Promise<void> {
    const zone = await this.zoneOf(fqdn);
    const name = dotted(fqdn);
    const zoneUrl = `/zones/${encodeURIComponent(zone.id)}`;
    const res = await this.request<{ rrsets?: RRset[] }>(
      'get',
      `${zoneUrl}?rrsets=true&rrset_name=${encodeURIComponent(name)}&rrset_type=TXT`,
      `reading TXT ${name}`,
    );
    if (res.status !== 200) throw this.fail(`reading TXT ${name}`, res.status, res.data);
    const current = (res.data.rrsets ?? []).find((r) => r.name === name && r.type === 'TXT');
    const before = (current?.records ?? []).map((r) => r.content);
    const after = edit(before);
    if (after.length === before.length && after.every((v, i) => v === before[i])) return;
    const rrset =
      after.length === 0
        ? { name, type: 'TXT', changetype: 'DELETE' }
        : {
            name,
            type: 'TXT',
            ttl: current?.ttl ?? CHALLENGE_TTL_SECONDS,
            changetype: 'REPLACE',
            records: after.map((content) => ({ content, disabled: false })),
          };
    const patch = await this.request<unknown>('patch', zoneUrl, `writing TXT ${name}`, {
      rrsets: [rrset],
    });
    if (patch.status !== 204 && patch.status !== 200) {
      throw this.fail(`writing TXT ${name}`, patch.status, patch.data);
    }
    this.opts.log.debug('PowerDNS TXT set written', {
      fqdn: name,
      zone: zone.name,
      values: after.length,
    });
  }
}
