import * as acme from './acme-client.js';
import axios from 'axios';
import { errorMessage } from '../domain/errors.js';
import { offeredProfiles } from '../domain/profiles.js';

/** Fetches an ACME directory (RFC 8555 §7.1.1) and says in plain words what is wrong. */
export async function probeDirectory(
  url: string,
  timeoutMs: number,
): Promise<{ ok: boolean; detail: string; profiles?: Record<string, string> }> {
  try {
    // Plain axios with the agent configureAcmeHttp built (CA bundle): not
    // acme-client's instance, whose retry interceptor loses network errors.
    const resp = await axios.get<unknown>(url, {
      timeout: timeoutMs,
      validateStatus: () => true,
      proxy: false,
      httpsAgent: acme.axios.defaults.httpsAgent as unknown,
    });
    const body = typeof resp.data === 'string' ? safeJson(resp.data) : resp.data;
    if (resp.status !== 200) return { ok: false, detail: `${url} answered HTTP ${resp.status}` };
    if (!body || typeof body !== 'object' || !('newOrder' in body)) {
      return { ok: false, detail: `${url} answered, but not with an ACME directory (no newOrder)` };
    }
    const profiles = offeredProfiles(body);
    return { ok: true, detail: `${url} answers`, ...(profiles && { profiles }) };
  } catch (err) {
    const code = String((err as { code?: unknown }).code ?? '');
    const hint = /CERT|SELF_SIGNED|certificate/i.test(code + errorMessage(err))
      ? ' (its HTTPS certificate is not trusted: set ACME_CA_BUNDLE?)'
      : code === 'ECONNREFUSED'
        ? ' (nothing listens there)'
        : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
          ? ' (the name does not resolve)'
          : '';
    return { ok: false, detail: `cannot reach ${url}: ${code || errorMessage(err)}${hint}` };
  }
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}
