// Minimal HTTP(S) clients on node built-ins, always to 127.0.0.1.
import http from 'node:http';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import tls from 'node:tls';

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function collect(res: http.IncomingMessage): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.once('error', reject);
    res.once('end', () =>
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      }),
    );
  });
}

/**
 * Plain HTTP GET to 127.0.0.1:`port` with `Host: host` — the request Pebble's
 * validator makes for an HTTP-01 challenge of `host`.
 */
export function httpGet(port: number, host: string, path: string): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path, headers: { host }, agent: false, timeout: 5000 },
      (res) => collect(res).then(resolve, reject),
    );
    req.once('timeout', () => req.destroy(new Error(`GET ${host}${path}: timeout`)));
    req.once('error', reject);
  });
}

/** HTTPS GET trusting only `caPem` (plus the system roots). */
export function httpsGet(url: string, caPem: string): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      url,
      // Pebble 2.10 refuses a request without a User-Agent (400 malformed).
      {
        ca: [...tls.rootCertificates, caPem],
        agent: false,
        timeout: 5000,
        headers: { 'user-agent': 'acme-sidecar-devenv' },
      },
      (res) => collect(res).then(resolve, reject),
    );
    req.once('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.once('error', reject);
  });
}
