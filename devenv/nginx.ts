// A stock nginx in the foreground with its own prefix directory, configured
// from the shipped templates in nginx/ — the same files production mounts
// into the official nginx image — so tests exercise the real config.
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { childPids, logTail, pidListensOn, spawnManaged, waitUntilReady } from './proc.js';
import type { ManagedProcess } from './proc.js';

export { httpGet } from './http.js';
export type { HttpResponse } from './http.js';

const execFileAsync = promisify(execFile);

export const NGINX_BIN = '/usr/sbin/nginx';

/** One TLS server block: certificate `<certDir>/live/<certName>/`, chosen by SNI. */
export interface TlsServerSpec {
  certName: string;
  serverNames: readonly string[];
}

export interface NginxRenderOptions {
  /** Certificates to serve over TLS; ignored when `httpOnly`. */
  tlsServers?: readonly TlsServerSpec[];
  /**
   * Render only the HTTP (challenge) server. nginx refuses to start when a
   * certificate file is missing, so tests that start before any certificate
   * exists use this, then `reload()` with TLS servers.
   */
  httpOnly?: boolean;
  /**
   * Config files to `include` inside `http {}` (globs), such as the TLS
   * servers nginx/40-acme-sidecar.sh renders; kept on reload unless given.
   */
  include?: readonly string[];
}

export interface NginxOptions extends NginxRenderOptions {
  /** nginx prefix directory (config, pid, logs, temp paths). */
  dir: string;
  httpPort: number;
  httpsPort: number;
  webroot: string;
  certDir: string;
  /** Directory holding default.conf.template and tls-server.conf.template. Default: the repo's nginx/. */
  templateDir?: string;
  /**
   * Also serve the HTTP (challenge) server on [::1]: Pebble validates an
   * IPv6 `ip` identifier (RFC 8738) by connecting to the address itself.
   */
  listenIpv6?: boolean;
}

export interface NginxInstance {
  process: ManagedProcess;
  prefixDir: string;
  confPath: string;
  errorLogPath: string;
  accessLogPath: string;
  httpPort: number;
  httpsPort: number;
  webroot: string;
  certDir: string;
  /** Current worker pids (children of the master). */
  workerPids(): number[];
  /**
   * Re-render the config (optionally with new TLS servers; giving
   * `tlsServers` turns `httpOnly` off unless it is set too), check it with
   * `nginx -t`, run `nginx -s reload`, and resolve once every old worker has
   * been replaced by a new one — i.e. new connections see the new config.
   */
  reload(update?: NginxRenderOptions): Promise<void>;
  stop(): Promise<void>;
}

/** The repo's nginx/ directory (works from devenv/*.ts and from dist/devenv/*.js). */
export function defaultTemplateDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = path.join(dir, 'nginx');
    if (existsSync(path.join(candidate, 'default.conf.template'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error('nginx/default.conf.template not found above ' + import.meta.url);
}

/**
 * envsubst-style rendering of `${NAME}` placeholders. Unlike the image's
 * envsubst (which leaves unknown variables in place), an unknown upper-case
 * placeholder is an error here, so a template typo fails the tests instead
 * of reaching nginx. nginx's own `$uri`/`$host` are not touched.
 */
export function renderTemplate(text: string, vars: Readonly<Record<string, string>>): string {
  return text.replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (_m, name: string) => {
    const v = vars[name];
    if (v === undefined) throw new Error(`template placeholder \${${name}} has no value`);
    return v;
  });
}

interface RenderContext {
  dir: string;
  httpPort: number;
  httpsPort: number;
  webroot: string;
  certDir: string;
  templateDir: string;
  listenIpv6: boolean;
}

async function renderMainConfig(ctx: RenderContext, r: NginxRenderOptions): Promise<string> {
  const common = { LISTEN_ADDR: '127.0.0.1' };
  const httpTpl = await readFile(path.join(ctx.templateDir, 'default.conf.template'), 'utf8');
  const parts = (ctx.listenIpv6 ? ['127.0.0.1', '[::1]'] : ['127.0.0.1']).map((addr) =>
    renderTemplate(httpTpl, {
      LISTEN_ADDR: addr,
      HTTP_PORT: String(ctx.httpPort),
      ACME_WEBROOT: ctx.webroot,
    }),
  );
  if (!r.httpOnly) {
    const tlsTpl = await readFile(path.join(ctx.templateDir, 'tls-server.conf.template'), 'utf8');
    for (const s of r.tlsServers ?? []) {
      parts.push(
        renderTemplate(tlsTpl, {
          ...common,
          HTTPS_PORT: String(ctx.httpsPort),
          SERVER_NAME: s.serverNames.join(' '),
          CERT_DIR: ctx.certDir,
          CERT_NAME: s.certName,
        }),
      );
    }
  }
  for (const glob of r.include ?? []) parts.push(`include ${glob};`);
  const d = ctx.dir;
  // The minimal main config the official image's nginx.conf would provide,
  // with every writable path inside the prefix dir (nothing under /var).
  return `# Generated by devenv/nginx.ts from nginx/*.template — do not edit.
daemon off;
worker_processes 1;
pid ${d}/nginx.pid;
error_log ${d}/error.log notice;
events { worker_connections 256; }
http {
  types { text/html html; text/plain txt; }
  default_type application/octet-stream;
  access_log ${d}/access.log;
  client_body_temp_path ${d}/tmp/client_body;
  proxy_temp_path ${d}/tmp/proxy;
  fastcgi_temp_path ${d}/tmp/fastcgi;
  uwsgi_temp_path ${d}/tmp/uwsgi;
  scgi_temp_path ${d}/tmp/scgi;

${parts.join('\n')}
}
`;
}

async function nginxCli(args: readonly string[]): Promise<void> {
  try {
    await execFileAsync(NGINX_BIN, args);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`nginx ${args.join(' ')} failed:\n${e.stderr ?? e.message}`);
  }
}

export async function startNginx(opts: NginxOptions): Promise<NginxInstance> {
  const ctx: RenderContext = {
    dir: opts.dir,
    httpPort: opts.httpPort,
    httpsPort: opts.httpsPort,
    webroot: opts.webroot,
    certDir: opts.certDir,
    templateDir: opts.templateDir ?? defaultTemplateDir(),
    listenIpv6: opts.listenIpv6 ?? false,
  };
  let current: NginxRenderOptions = {
    tlsServers: opts.tlsServers,
    httpOnly: opts.httpOnly,
    include: opts.include,
  };
  await mkdir(path.join(opts.dir, 'tmp'), { recursive: true });
  const confPath = path.join(opts.dir, 'nginx.conf');
  const errorLogPath = path.join(opts.dir, 'error.log');
  const cli = ['-p', opts.dir, '-c', confPath, '-e', errorLogPath];
  await writeFile(confPath, await renderMainConfig(ctx, current));

  const proc = spawnManaged('nginx', NGINX_BIN, cli, {
    logPath: path.join(opts.dir, 'nginx.stdout.log'),
  });
  const serveTls = !current.httpOnly && (current.tlsServers?.length ?? 0) > 0;
  try {
    await waitUntilReady(
      proc,
      // The master binds the sockets before forking workers.
      async () =>
        childPids(proc.pid).length > 0 &&
        pidListensOn(proc.pid, opts.httpPort) &&
        (!serveTls || pidListensOn(proc.pid, opts.httpsPort)),
      'its listeners and a worker',
    );
  } catch (err) {
    // nginx's own complaints go to error.log, not stdout.
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`${msg}\n--- tail of ${errorLogPath} ---\n${logTail(errorLogPath)}`);
  }

  const errorLogSize = (): number => {
    try {
      return statSync(errorLogPath).size;
    } catch {
      return 0;
    }
  };

  return {
    process: proc,
    prefixDir: opts.dir,
    confPath,
    errorLogPath,
    accessLogPath: path.join(opts.dir, 'access.log'),
    httpPort: opts.httpPort,
    httpsPort: opts.httpsPort,
    webroot: opts.webroot,
    certDir: opts.certDir,
    workerPids: () => childPids(proc.pid),
    async reload(update?: NginxRenderOptions) {
      // Passing tlsServers means "serve these": it lifts httpOnly unless
      // httpOnly is given explicitly too.
      const next: NginxRenderOptions = {
        tlsServers: update?.tlsServers ?? current.tlsServers,
        httpOnly: update?.httpOnly ?? (update?.tlsServers ? false : current.httpOnly),
        include: update?.include ?? current.include,
      };
      const previousConf = await readFile(confPath, 'utf8');
      await writeFile(confPath, await renderMainConfig(ctx, next));
      // Check first: a config the master rejects on reload leaves the old
      // workers running and would only show up as a timeout below.
      try {
        await nginxCli(['-t', '-q', ...cli]);
      } catch (err) {
        await writeFile(confPath, previousConf);
        throw err;
      }
      current = next;
      const oldWorkers = new Set(childPids(proc.pid));
      const logOffset = errorLogSize();
      await nginxCli(['-s', 'reload', ...cli]);
      // Reload took effect when the master has forked new workers and every
      // old one has exited: from then on every connection uses the new
      // config (and new certificates). Idle old workers exit at once; we open
      // no long-lived connections, so this is quick.
      const deadline = Date.now() + 10000;
      for (;;) {
        if (!proc.isRunning())
          throw new Error(`nginx exited during reload:\n${logTail(errorLogPath)}`);
        const now = childPids(proc.pid);
        if (now.length > 0 && now.every((p) => !oldWorkers.has(p))) return;
        const log = (await readFile(errorLogPath, 'utf8')).slice(logOffset);
        if (/\[(emerg|alert)\]/.test(log)) throw new Error(`nginx reload failed:\n${log}`);
        if (Date.now() > deadline) {
          throw new Error(
            `nginx reload did not replace workers in 10 s:\n${logTail(errorLogPath)}`,
          );
        }
        await sleep(25);
      }
    },
    stop: () => proc.stop(),
  };
}

export interface ServedCert {
  serialNumber: string;
  fingerprint256: string;
  pem: string;
}

/** The certificate nginx serves on 127.0.0.1:`port` for SNI `servername`. */
export function tlsServedCert(port: number, servername: string): Promise<ServedCert> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({
      host: '127.0.0.1',
      port,
      servername,
      // We only inspect the certificate; trust is checked by the caller.
      rejectUnauthorized: false,
    });
    sock.setTimeout(5000, () => sock.destroy(new Error(`TLS to ${servername}:${port}: timeout`)));
    sock.once('error', reject);
    sock.once('secureConnect', () => {
      const cert = sock.getPeerX509Certificate();
      sock.end();
      if (!cert) return reject(new Error(`no certificate from ${servername}:${port}`));
      resolve({
        serialNumber: cert.serialNumber,
        fingerprint256: cert.fingerprint256,
        pem: cert.toString(),
      });
    });
  });
}
