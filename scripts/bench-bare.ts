/**
 * The comparison for scripts/bench.ts: the loop a user of acme-client would
 * write. One account, then `client.auto()` for one certificate after the
 * other (HTTP-01 through the nginx webroot, `skipChallengeVerification`
 * because the names resolve only in Pebble's DNS), with acme-client's
 * default options. In its own child process so its RSS and CPU are its own.
 *
 * Input (environment): BENCH_DIRECTORY_URL, BENCH_CA_PEM_PATH, BENCH_WEBROOT,
 * BENCH_HOSTS (comma-separated).
 * Output: one JSON line on stdout.
 */
import { X509Certificate } from 'node:crypto';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import acme from 'acme-client';

export interface BareReport {
  wallMs: number;
  ok: number;
  total: number;
  errors: string[];
  acmeRequests: number;
  /** Requests by "<METHOD> <status>" (HEAD = nonce fetches). */
  acmeByMethod: Record<string, number>;
  cpuUserMs: number;
  cpuSystemMs: number;
  maxRssMB: number;
}

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

async function main(): Promise<void> {
  const directoryUrl = need('BENCH_DIRECTORY_URL');
  const caPem = await readFile(need('BENCH_CA_PEM_PATH'), 'utf8');
  const webroot = need('BENCH_WEBROOT');
  const hosts = need('BENCH_HOSTS').split(',');

  // Trusting Pebble's listener CA is the one thing a user must add (the
  // machine's own roots kept); keep-alive as the sidecar has it.
  acme.axios.defaults.proxy = false;
  acme.axios.defaults.httpsAgent = new https.Agent({
    keepAlive: true,
    secureContext: tls.createSecureContext({ ca: [...tls.rootCertificates, caPem] }),
  });
  const byMethod = new Map<string, number>();
  const count = (method: string | undefined, status: number | string | undefined) => {
    const key = `${(method ?? '?').toUpperCase()} ${String(status ?? 'error')}`;
    byMethod.set(key, (byMethod.get(key) ?? 0) + 1);
  };
  acme.axios.interceptors.response.use(
    (resp) => {
      count(resp.config.method, resp.status);
      return resp;
    },
    (err: unknown) => {
      const e = err as {
        config?: { method?: string };
        response?: { status?: number };
        code?: string;
      };
      count(e.config?.method, e.response?.status ?? e.code);
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    },
  );

  const t0 = performance.now();
  const client = new acme.Client({
    directoryUrl,
    accountKey: await acme.crypto.createPrivateEcdsaKey('P-256'),
  });
  await client.createAccount({ termsOfServiceAgreed: true });

  const challengeDir = path.join(webroot, '.well-known', 'acme-challenge');
  const tokenPath = (token: string) => path.join(challengeDir, token);
  const errors: string[] = [];
  let ok = 0;

  async function one(host: string): Promise<void> {
    const key = await acme.crypto.createPrivateEcdsaKey('P-256');
    const [, csr] = await acme.crypto.createCsr({ commonName: host, altNames: [host] }, key);
    const pem = await client.auto({
      csr,
      challengePriority: ['http-01'],
      skipChallengeVerification: true,
      termsOfServiceAgreed: true,
      challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
        await writeFile(tokenPath(challenge.token), keyAuthorization);
        await chmod(tokenPath(challenge.token), 0o644);
      },
      challengeRemoveFn: async (_authz, challenge) => {
        await rm(tokenPath(challenge.token), { force: true });
      },
    });
    const leaf = new X509Certificate(pem);
    if (!leaf.checkHost(host))
      throw new Error(`${host}: certificate is for ${leaf.subjectAltName}`);
    ok++;
  }

  for (const host of hosts) {
    try {
      await one(host);
    } catch (err) {
      errors.push(`${host}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const wallMs = performance.now() - t0;

  const cpu = process.cpuUsage();
  const report: BareReport = {
    wallMs,
    ok,
    total: hosts.length,
    errors: errors.slice(0, 5),
    acmeRequests: [...byMethod.values()].reduce((a, b) => a + b, 0),
    acmeByMethod: Object.fromEntries(byMethod),
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    maxRssMB: process.resourceUsage().maxRSS / 1024,
  };
  process.stdout.write(JSON.stringify(report) + '\n', () => process.exit(0));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-bare failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
