/**
 * "Renewed but never reloaded": the sidecar swapped live/<name> but the TLS
 * server in front still serves the old certificate (nginx not reloaded, a
 * load balancer with its own copy). The only proof of what is served is
 * to ask: connect, send the SNI name, read the leaf's serial.
 */
import { isIP } from 'node:net';
import tls from 'node:tls';
import type { DeploymentCheck } from '../domain/status.js';
import type { Endpoint } from '../domain/endpoints.js';

// The parser is shared with the config schema, so it lives in domain/.
export { parseEndpoints, type Endpoint } from '../domain/endpoints.js';

export type { DeploymentCheck, DeploymentState } from '../domain/status.js';

export interface CheckDeploymentOptions {
  readonly endpoints: readonly Endpoint[];
  /** SNI name to send: a hostname of the certificate, so the server picks its block. */
  readonly servername: string;
  /** Serial of the certificate live/ holds now (CertMeta.serial); hex, any case, leading zeros allowed. */
  readonly expectedSerial: string;
  /** Per endpoint, connect plus handshake. Default 5000. */
  readonly timeoutMs?: number;
}

/**
 * Checks every endpoint in parallel; never rejects for an endpoint's
 * failure (that is `unreachable`). Certificates are NOT verified: the
 * question is which certificate is served, not whether a client would trust
 * it (a self-signed placeholder or a staging certificate must be recognised
 * too). Throws only for an `expectedSerial` that is not hex, a caller's bug.
 */
export async function checkDeployment(opts: CheckDeploymentOptions): Promise<DeploymentCheck[]> {
  const expected = serialValue(opts.expectedSerial);
  if (expected === undefined) {
    throw new TypeError(`expectedSerial ${JSON.stringify(opts.expectedSerial)} is not hex`);
  }
  const timeoutMs = opts.timeoutMs ?? 5000;
  return Promise.all(
    opts.endpoints.map(async (ep): Promise<DeploymentCheck> => {
      const endpoint = formatEndpoint(ep);
      let served: string;
      try {
        served = await servedSerial(ep, opts.servername, timeoutMs);
      } catch (err) {
        return { endpoint, state: 'unreachable', error: (err as Error).message };
      }
      const state = serialValue(served) === expected ? 'current' : 'stale';
      return { endpoint, state, servedSerial: served.toUpperCase() };
    }),
  );
}

/** Serials compare as numbers: `00AB`, `ab` and `AB` are the same serial. */
function serialValue(s: string): bigint | undefined {
  const hex = s.trim().replace(/:/g, '');
  if (!/^[0-9a-f]+$/i.test(hex)) return undefined;
  return BigInt('0x' + hex);
}

function servedSerial(ep: Endpoint, servername: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const where = formatEndpoint(ep);
    const sock = tls.connect({
      host: ep.host,
      port: ep.port,
      // RFC 6066 §3: SNI carries host names only, never an address.
      ...(isIP(servername) === 0 && { servername }),
      rejectUnauthorized: false,
      timeout: timeoutMs,
    });
    // `timeout` is for idleness only; this bounds connect + handshake as a whole.
    const timer = setTimeout(
      () => sock.destroy(new Error(`${where}: no TLS handshake within ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.once('timeout', () =>
      sock.destroy(new Error(`${where}: no TLS handshake within ${timeoutMs} ms`)),
    );
    sock.once('error', (err: Error) => {
      clearTimeout(timer);
      reject(new Error(`${where}: ${err.message}`));
    });
    sock.once('secureConnect', () => {
      clearTimeout(timer);
      const cert = sock.getPeerX509Certificate();
      sock.destroy();
      if (!cert) reject(new Error(`${where}: the server sent no certificate`));
      else resolve(cert.serialNumber);
    });
  });
}

function formatEndpoint(ep: Endpoint): string {
  return `${isIP(ep.host) === 6 ? `[${ep.host}]` : ep.host}:${ep.port}`;
}
