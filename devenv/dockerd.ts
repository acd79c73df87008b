// A real Docker engine (Debian's docker.io, dockerd 20.10) confined to one
// temp directory, for tests and the demo: its own data root, exec root, pid
// file and UNIX socket, the vfs storage driver, and none of the host's network
// setup (no iptables, no bridge, no masquerading, no userland proxy). Only
// the "none" and "host" networks exist, so containers stay off the network or
// on loopback.
//
// dockerd starts containerd as a child in its own session, and containerd's
// shims re-parent to init: neither is in dockerd's process group. stop()
// therefore finds every process of this engine through /proc (command lines
// naming the engine's directory, and their descendants) and makes sure none
// survives, then unmounts whatever is left under the directory.
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, copyFileSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { pidAlive, spawnManaged, waitUntilReady, type ManagedProcess } from './proc.js';

const execFileAsync = promisify(execFile);

export const DOCKERD_BIN = '/usr/sbin/dockerd';
/** The CLI of the same release as the engine (another `docker` may be first on PATH). */
export const DOCKER_CLI = '/usr/bin/docker';
/** Debian busybox-static: a statically linked busybox, enough for a label-carrying container. */
export const BUSYBOX_BIN = '/bin/busybox';

/** sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;

export interface DockerdOptions {
  /** Parent of the engine's temp dir. Default: os.tmpdir(). Keep it short: the socket path must fit 107 bytes. */
  baseDir?: string;
  /** Keep the temp dir (dockerd.log, data) after stop(). Default false. */
  keepTempDir?: boolean;
  /**
   * Seconds dockerd gives a container between SIGTERM and SIGKILL when it
   * shuts down (busybox as PID 1 ignores SIGTERM). Default 1.
   */
  shutdownTimeoutSeconds?: number;
  /** How long to wait for the API to answer. Default 30 s. */
  readyTimeoutMs?: number;
  /**
   * Storage driver. Default vfs (works on any backing filesystem). overlay2
   * needs an ext4/xfs base dir, but builds and starts large images many times
   * faster: vfs copies the whole rootfs for every layer and container.
   */
  storageDriver?: 'vfs' | 'overlay2';
}

export interface EngineResponse {
  status: number;
  body: string;
}

export interface DockerCliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface DockerEngine {
  /** Temp dir holding everything; `dockerd.log` is the daemon's log. */
  readonly dir: string;
  /** The engine's UNIX socket (absolute path, shorter than 108 bytes). */
  readonly socketPath: string;
  /** `unix://<socketPath>`. */
  readonly host: string;
  /** `{ DOCKER_HOST }` for the docker CLI, docker-compose or the sidecar. */
  readonly env: Readonly<Record<string, string>>;
  readonly logPath: string;
  /** The current dockerd process (changes after restart()). */
  readonly process: ManagedProcess;
  /** One Engine API call over the socket (JSON body if given), 30 s timeout. */
  request(method: string, apiPath: string, body?: unknown): Promise<EngineResponse>;
  /** Run the docker CLI (DOCKER_CLI) against this engine; never throws on a non-zero exit. */
  docker(args: readonly string[], opts?: { timeoutMs?: number }): Promise<DockerCliResult>;
  /** Pids of every process of this engine right now: dockerd, containerd, shims, containers. */
  pids(): number[];
  /**
   * Stop dockerd and start it again on the same directories and socket
   * (`--live-restore`: running containers keep running). Event streams and
   * open connections drop.
   */
  restart(): Promise<void>;
  /** Stop the daemon by its pid, wait, kill any survivor, unmount, remove the dir. Idempotent. */
  stop(): Promise<void>;
}

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** ppid of every process, read from /proc. */
function processTable(): Map<number, { ppid: number; cmdline: string }> {
  const table = new Map<number, { ppid: number; cmdline: string }>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return table;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] === 'Z' || rest[0] === 'X') continue; // zombies hold nothing
      const cmdline = readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ');
      table.set(Number(e), { ppid: Number(rest[1]), cmdline });
    } catch {
      /* vanished meanwhile */
    }
  }
  return table;
}

/**
 * Processes of the engine living in `dir`: those whose command line names the
 * directory (dockerd, containerd, every shim via its `-address`), plus all
 * their descendants (the containers' processes).
 */
export function engineProcesses(dir: string, extraPids: readonly number[] = []): number[] {
  const table = processTable();
  const marker = dir.endsWith('/') ? dir : `${dir}/`;
  const found = new Set<number>();
  for (const [pid, p] of table) if (p.cmdline.includes(marker)) found.add(pid);
  for (const pid of extraPids) if (table.has(pid)) found.add(pid);
  // Descendants, to a fixed point.
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, p] of table) {
      if (!found.has(pid) && found.has(p.ppid)) {
        found.add(pid);
        grew = true;
      }
    }
  }
  found.delete(process.pid);
  return [...found].sort((a, b) => a - b);
}

/** Mount points at or under `dir` (deepest first), from /proc/self/mountinfo. */
export function mountsUnder(dir: string): string[] {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    // Field 5 is the mount point, with spaces etc. octal-escaped.
    const mp = line.split(' ')[4];
    if (mp === undefined) continue;
    const decoded = mp.replace(/\\([0-7]{3})/g, (_m, o: string) =>
      String.fromCharCode(parseInt(o, 8)),
    );
    if (decoded === dir || decoded.startsWith(`${dir}/`)) out.push(decoded);
  }
  return out.sort((a, b) => b.length - a.length);
}

function engineRequest(
  socketPath: string,
  method: string,
  apiPath: string,
  body?: unknown,
  timeoutMs = 30000,
): Promise<EngineResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      {
        socketPath,
        method,
        path: apiPath,
        headers: payload
          ? { 'content-type': 'application/json', 'content-length': payload.length }
          : {},
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('error', reject);
        res.once('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.once('timeout', () => req.destroy(new Error(`${method} ${apiPath}: timeout`)));
    req.once('error', reject);
    req.end(payload);
  });
}

export async function startDockerd(opts: DockerdOptions = {}): Promise<DockerEngine> {
  if (!executable(DOCKERD_BIN)) {
    throw new Error(
      `devenv needs ${DOCKERD_BIN} — missing. Install the Debian package: apt-get update && apt-get install -y docker.io`,
    );
  }
  const baseDir = path.resolve(opts.baseDir ?? os.tmpdir());
  // containerd's socket is the longest path the engine makes under its dir
  // (mkdtemp adds 6 characters to the prefix).
  const longest = path.join(baseDir, 'dk-XXXXXX', 'exec', 'containerd', 'containerd.sock.ttrpc');
  if (Buffer.byteLength(longest) > MAX_SOCKET_PATH) {
    throw new Error(
      `dockerd: base directory ${JSON.stringify(baseDir)} is too long: ` +
        `${longest} would exceed the ${MAX_SOCKET_PATH}-byte UNIX socket path limit; use a shorter baseDir`,
    );
  }
  const dir = await mkdtemp(path.join(baseDir, 'dk-'));
  const socketPath = path.join(dir, 'docker.sock');
  const configPath = path.join(dir, 'daemon.json');
  // An explicit, empty config file: the host's /etc/docker/daemon.json is not read.
  await writeFile(configPath, '{}\n');
  const logPath = path.join(dir, 'dockerd.log');
  const pidFile = path.join(dir, 'docker.pid');
  const shutdownTimeout = opts.shutdownTimeoutSeconds ?? 1;
  const args = [
    '--data-root',
    path.join(dir, 'data'),
    '--exec-root',
    path.join(dir, 'exec'),
    '--pidfile',
    pidFile,
    '-H',
    `unix://${socketPath}`,
    '--config-file',
    configPath,
    `--storage-driver=${opts.storageDriver ?? 'vfs'}`,
    '--iptables=false',
    '--ip6tables=false',
    '--ip-masq=false',
    '--ip-forward=false',
    '--bridge=none',
    '--userland-proxy=false',
    `--shutdown-timeout=${shutdownTimeout}`,
    // Containers survive a restart() of the daemon, as on a host where
    // dockerd is upgraded; stop() stops them first.
    '--live-restore',
  ];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // dockerd looks up containerd, runc and docker-init on PATH.
    PATH: `/usr/sbin:/usr/bin:/sbin:/bin${process.env.PATH ? `:${process.env.PATH}` : ''}`,
  };
  delete env.DOCKER_HOST;

  let proc: ManagedProcess | undefined;
  let stopped = false;
  // Every pid ever seen for this engine: the exit hook kills them if stop() never ran.
  const seen = new Set<number>();

  const onExit = (): void => {
    for (const pid of engineProcesses(dir, [...seen])) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  };
  process.once('exit', onExit);

  const ping = async (): Promise<boolean> => {
    const r = await engineRequest(socketPath, 'GET', '/_ping', undefined, 2000);
    return r.status === 200 && r.body === 'OK';
  };

  const launch = async (): Promise<void> => {
    const p = spawnManaged('dockerd', DOCKERD_BIN, args, { logPath, env, cwd: dir });
    proc = p;
    seen.add(p.pid);
    await waitUntilReady(p, ping, `the Engine API on ${socketPath}`, opts.readyTimeoutMs ?? 30000);
    for (const pid of engineProcesses(dir)) seen.add(pid);
  };

  /** Stop every running container at once (SIGKILL: busybox as PID 1 ignores SIGTERM). */
  const stopContainers = async (): Promise<void> => {
    const list = await engineRequest(socketPath, 'GET', '/containers/json', undefined, 5000);
    if (list.status !== 200) return;
    const ids = (JSON.parse(list.body) as { Id: string }[]).map((c) => c.Id);
    await Promise.all(
      ids.map((id) =>
        engineRequest(socketPath, 'POST', `/containers/${id}/stop?t=0`, undefined, 10000),
      ),
    );
  };

  /**
   * Stop dockerd by its pid; then make sure nothing of this engine runs
   * (`keepContainers`: only dockerd and containerd, for restart()).
   */
  const halt = async (keepContainers: boolean): Promise<void> => {
    for (const pid of engineProcesses(dir)) seen.add(pid);
    if (!keepContainers && proc?.isRunning()) await stopContainers().catch(() => undefined);
    // dockerd stops containerd (and, without live-restore, its containers);
    // allow for that before ManagedProcess.stop escalates to SIGKILL.
    if (proc) await proc.stop(shutdownTimeout * 1000 + 20000);
    if (keepContainers) {
      // containerd is dockerd's child; it must be gone before a new one starts.
      const deadline = Date.now() + 10000;
      const containerd = (): number[] =>
        engineProcesses(dir).filter((pid) => {
          try {
            return readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('containerd\0');
          } catch {
            return false;
          }
        });
      while (containerd().length > 0 && Date.now() < deadline) await sleep(50);
      return;
    }
    // Survivors: containerd or shims if dockerd died hard, or their containers.
    const deadline = Date.now() + 10000;
    for (;;) {
      const left = engineProcesses(dir, [...seen]).filter(pidAlive);
      if (left.length === 0) break;
      if (Date.now() > deadline) {
        throw new Error(`dockerd: processes still running after stop: ${left.join(', ')}`);
      }
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await sleep(100);
    }
    // dockerd unmounts on a clean shutdown; after a hard kill, netns and shm
    // mounts can remain and would make the directory impossible to remove.
    for (const mp of mountsUnder(dir)) {
      await execFileAsync('umount', ['-l', mp]).catch(() => undefined);
    }
  };

  const engine: DockerEngine = {
    dir,
    socketPath,
    host: `unix://${socketPath}`,
    env: { DOCKER_HOST: `unix://${socketPath}` },
    logPath,
    get process(): ManagedProcess {
      if (!proc) throw new Error('dockerd was not started');
      return proc;
    },
    request: (method, apiPath, body) => engineRequest(socketPath, method, apiPath, body),
    docker: async (cliArgs, cliOpts) => {
      const cli = executable(DOCKER_CLI) ? DOCKER_CLI : 'docker';
      try {
        const { stdout, stderr } = await execFileAsync(cli, [...cliArgs], {
          env: { ...process.env, DOCKER_HOST: `unix://${socketPath}` },
          timeout: cliOpts?.timeoutMs ?? 60000,
          maxBuffer: 64 * 1024 * 1024,
        });
        return { code: 0, stdout, stderr };
      } catch (err) {
        const e = err as { code?: unknown; stdout?: unknown; stderr?: unknown; message?: string };
        return {
          code: typeof e.code === 'number' ? e.code : 1,
          stdout: typeof e.stdout === 'string' ? e.stdout : '',
          stderr: typeof e.stderr === 'string' ? e.stderr : (e.message ?? String(err)),
        };
      }
    },
    pids: () => engineProcesses(dir),
    restart: async () => {
      if (stopped) throw new Error('dockerd: restart() after stop()');
      await halt(true);
      await launch();
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      try {
        await halt(false);
      } finally {
        process.removeListener('exit', onExit);
        if (!opts.keepTempDir) await rm(dir, { recursive: true, force: true });
      }
    },
  };

  try {
    await launch();
  } catch (err) {
    await engine.stop().catch(() => undefined);
    throw err;
  }
  return engine;
}

/** `repo[:tag]` as Docker accepts it; checked before it goes into a URL. */
const IMAGE_REF = /^([a-z0-9]+(?:[._/-][a-z0-9]+)*)(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?$/;

/**
 * Make a tiny image from Debian's busybox-static (`/bin/busybox` plus one
 * symlink per applet in /bin) with the Engine API's import
 * (`POST /images/create?fromSrc=-`, what `docker import` does). Returns the
 * image id. About 1 MB; `sh`, `sleep`, `echo`, `cat`, `wget`... all work.
 */
export async function importBusyboxImage(
  engine: Pick<DockerEngine, 'dir' | 'socketPath' | 'request'>,
  ref = 'acme-test/busybox:latest',
): Promise<string> {
  const m = IMAGE_REF.exec(ref);
  if (!m?.[1])
    throw new Error(`importBusyboxImage: invalid image reference ${JSON.stringify(ref)}`);
  const repo = m[1];
  const tag = m[2] ?? 'latest';
  if (!executable(BUSYBOX_BIN)) {
    throw new Error(
      `devenv needs ${BUSYBOX_BIN} — missing. Install the Debian package: apt-get install -y busybox-static`,
    );
  }
  const rootfs = await mkdtemp(path.join(engine.dir, 'rootfs-'));
  try {
    for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev']) {
      await mkdir(path.join(rootfs, d), { recursive: true });
    }
    copyFileSync(BUSYBOX_BIN, path.join(rootfs, 'bin', 'busybox'));
    const { stdout } = await execFileAsync(BUSYBOX_BIN, ['--list']);
    for (const applet of stdout.split('\n')) {
      if (!/^[a-z0-9_.[-]+$/.test(applet) || applet === 'busybox') continue;
      if (applet === '[' || applet === '[[') continue;
      await symlink('busybox', path.join(rootfs, 'bin', applet));
    }
    await writeFile(path.join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\n');
    await writeFile(path.join(rootfs, 'etc', 'group'), 'root:x:0:\n');

    const query = new URLSearchParams({ fromSrc: '-', repo, tag });
    const result = await new Promise<EngineResponse>((resolve, reject) => {
      const tar = spawn('tar', ['-C', rootfs, '--numeric-owner', '-c', '.'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let tarErr = '';
      tar.stderr.on('data', (c: Buffer) => (tarErr += c.toString()));
      const req = http.request(
        {
          socketPath: engine.socketPath,
          method: 'POST',
          path: `/images/create?${query.toString()}`,
          headers: { 'content-type': 'application/x-tar' },
          timeout: 60000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.once('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.once('error', reject);
        },
      );
      req.once('timeout', () => req.destroy(new Error('image import: timeout')));
      req.once('error', reject);
      tar.once('error', reject);
      tar.once('exit', (code) => {
        if (code !== 0) req.destroy(new Error(`tar exited ${code}: ${tarErr.trim()}`));
      });
      tar.stdout.pipe(req);
    });
    // The body is a JSON stream; a failure is a line with "error", even with 200.
    if (result.status !== 200 || /"error"\s*:/.test(result.body)) {
      throw new Error(`image import failed (HTTP ${result.status}): ${result.body.slice(0, 500)}`);
    }
    const inspect = await engine.request(
      'GET',
      `/images/${encodeURIComponent(`${repo}:${tag}`)}/json`,
    );
    if (inspect.status !== 200) {
      throw new Error(`imported image ${repo}:${tag} not found (HTTP ${inspect.status})`);
    }
    const id = (JSON.parse(inspect.body) as { Id?: unknown }).Id;
    if (typeof id !== 'string') throw new Error(`image ${repo}:${tag}: no Id in inspect`);
    return id;
  } finally {
    await rm(rootfs, { recursive: true, force: true });
  }
}
