import type { AxiosResponse } from 'axios';
import { SidecarError } from '../domain/errors.js';

/** `s` cut to `n` characters, marked when cut; `undefined` reads as such. */
export function truncate(s: string | undefined, n = 200): string {
  const t = s ?? String(s);
  return t.length > n ? `${t.slice(0, n)}...` : t;
}

/**
 * A platform API's body (fetched as text) parsed as JSON; a body that is not
 * JSON is PLATFORM_BAD_RESPONSE (retryable: proxies and restarts produce them).
 */
export function parseJson<T>(resp: AxiosResponse<string>, what: string): T {
  try {
    return JSON.parse(resp.data) as T;
  } catch {
    throw new SidecarError(
      'PLATFORM_BAD_RESPONSE',
      `${what}: the response is not valid JSON (${resp.data.length} bytes: ${truncate(resp.data, 80)})`,
      { retryable: true },
    );
  }
}
