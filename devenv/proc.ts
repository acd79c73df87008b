// Small process supervisor for the devenv: spawn a long-running program with
// its output in a log file, wait for it to become ready (failing fast, with
// the log tail, if it exits first) and stop it (SIGTERM, then SIGKILL).
import { spawn } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
} from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  /** Resolves when the process has exited (and been reaped). Never rejects. */
  readonly exited: Promise<ExitInfo>;
  isRunning(): boolean;
  /** SIGTERM to the process group, SIGKILL after `timeoutMs`; resolves once exited. */
  stop(timeoutMs?: number): Promise<void>;
  /** Synchronous SIGKILL of the process group, for `process.on('exit')`. */
  killNow(): void;
}

export interface SpawnOptions {
  logPath: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Last `lines` lines of a log file, for error messages. */
export function logTail(path: string, lines = 30): string {
  try {
    const text = readFileSync(path, 'utf8').trimEnd();
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function spawnManaged(
  name: string,
  command: string,
  args: readonly string[],
  opts: SpawnOptions,
): ManagedProcess {
  // stdout and stderr go straight to a file: no pipe to drain, and the log
  // survives for post-mortems (`keepTempDir`).
  const fd = openSync(opts.logPath, 'a');
  const child = spawn(command, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', fd, fd],
    // Own process group, so stop() also reaches grandchildren (nginx's
    // workers would otherwise survive a SIGKILLed master).
    detached: true,
  });
  closeSync(fd);

  let exitInfo: ExitInfo | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
    child.once('error', (err) => {
      // spawn failure (e.g. ENOENT): no 'exit' event follows.
      exitInfo = { code: null, signal: null };
      // Record the cause where the error message will look for it.
      appendFileSync(opts.logPath, `spawn error: ${err.message}\n`);
      resolve(exitInfo);
    });
  });
  // No pid means spawn failed; 'error' follows asynchronously and the
  // readiness wait reports it. -1 is never signalled.
  const pid = child.pid ?? -1;

  const signalGroup = (sig: NodeJS.Signals): void => {
    if (pid <= 0 || exitInfo) return;
    try {
      process.kill(-pid, sig); // negative pid: the whole process group
    } catch {
      /* already gone */
    }
  };

  return {
    name,
    pid,
    logPath: opts.logPath,
    exited,
    isRunning: () => pid > 0 && exitInfo === undefined,
    killNow: () => signalGroup('SIGKILL'),
    async stop(timeoutMs = 5000) {
      if (exitInfo) return;
      signalGroup('SIGTERM');
      const timer = setTimeout(() => signalGroup('SIGKILL'), timeoutMs);
      // SIGKILL, if needed, goes to the whole group too, so no worker is left.
      // Nothing is signalled after the leader has exited: its id could be reused.
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Poll `check` until it returns true. Fails with the process's log tail if the
 * process exits first or the timeout passes.
 */
export async function waitUntilReady(
  proc: ManagedProcess,
  check: () => Promise<boolean>,
  what: string,
  timeoutMs = 15000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    if (!proc.isRunning()) {
      const info = await proc.exited;
      throw new Error(
        `${proc.name} exited early (code ${info.code}, signal ${info.signal}) while waiting for ${what}.\n` +
          `--- tail of ${proc.logPath} ---\n${logTail(proc.logPath)}`,
      );
    }
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${proc.name}: timed out after ${timeoutMs} ms waiting for ${what}` +
          (lastError ? ` (last error: ${lastError})` : '') +
          `.\n--- tail of ${proc.logPath} ---\n${logTail(proc.logPath)}`,
      );
    }
    await sleep(50);
  }
}

/**
 * A port that was free on 127.0.0.1 a moment ago (bind port 0, read, close).
 * There is a small race with other programs; ports are only ever loopback.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr && typeof addr === 'object') resolve(addr.port);
        else reject(new Error('could not read the bound port'));
      });
    });
  });
}

/** `count` distinct free ports (distinct even if the OS hands one out twice). */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** Pids whose parent is `ppid` (read from /proc; Linux only). */
export function childPids(ppid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      // Field 4 is the ppid; field 2 (comm) may contain spaces, so split after ')'.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === ppid) out.push(Number(e));
    } catch {
      /* process vanished */
    }
  }
  return out;
}

/** True if a process with this pid exists (and is not a zombie). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Inodes of TCP sockets in LISTEN state on `port` (any address), from /proc/net. */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A') continue; // 0A = LISTEN
      const portHex = cols[1]?.split(':').pop() ?? '';
      if (parseInt(portHex, 16) === port) inodes.add(cols[9] ?? '');
    }
  }
  return inodes;
}

/**
 * True if process `pid` itself holds a listening TCP socket on `port`.
 * Stronger than "the port answers": with ports picked at random, something
 * else may already listen there, and a probe would then succeed although our
 * process failed to bind (and is about to exit).
 */
export function pidListensOn(pid: number, port: number): boolean {
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return false;
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1] !== undefined && inodes.has(m[1])) return true;
    } catch {
      /* fd closed meanwhile */
    }
  }
  return false;
}

/**
 * The inotify watches process `pid` holds, counted by the kernel: one
 * `inotify wd:` line per watch in /proc/<pid>/fdinfo/<fd> of each inotify fd
 * (Linux only; another user's process reads as 0).
 */
export function inotifyWatchCount(pid: number): number {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fdinfo`);
  } catch {
    return 0;
  }
  let n = 0;
  for (const fd of fds) {
    try {
      n += (readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').match(/^inotify wd:/gm) ?? []).length;
    } catch {
      /* fd closed meanwhile */
    }
  }
  return n;
}
