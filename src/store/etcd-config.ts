/**
 * Reaching etcd from the settings: the client's endpoints, TLS, auth and
 * deadlines, and the cluster key file. The store itself is etcd-store.ts.
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleWhen } from 'cockatiel';
import { isRecoverableError, type IOptions } from 'etcd3';
import { SidecarError, errorMessage } from '../domain/errors.js';
import { systemClock, type Clock } from '../lifecycle/clock.js';
import { KEY_FILE_FORMAT, Keyring } from './sealed-value.js';

/** gRPC deadline of each single attempt; etcd3 makes up to 3 attempts. */
export const DEFAULT_CALL_TIMEOUT_MS = 2_000;

/**
 * Reconnecting after etcd was unreachable (a partition healed, members back):
 * the defaults grow with the length of the cut (gRPC's reconnect backoff up to
 * 120 s, etcd3's watch backoff up to 30 s, each member's circuit open 5 s at a
 * time), so a node cut off for a minute could take minutes to rejoin. These
 * bound the wait after a heal to about RECONNECT_MAX_MS, at a cost of at most
 * one connection attempt per member and stream about every RECONNECT_MAX_MS.
 */
export const RECONNECT_INITIAL_MS = 250;
export const RECONNECT_MAX_MS = 2_000;
/** A member that failed this many calls in a row is skipped... */
export const MEMBER_FAILURES_TO_SKIP = 3;
/** ...for this long, then tried again. */
export const MEMBER_SKIP_MS = 2_000;

/** The settings createEtcdStore reads (a slice of Config). */
export interface EtcdStoreConfig {
  readonly clusterEtcdEndpoints?: readonly string[];
  readonly clusterName: string;
  /** Unset: the hostname. */
  readonly clusterNodeName?: string;
  readonly clusterEncryptionKeyFile?: string;
  readonly clusterLeaseTtlSeconds: number;
  readonly clusterEtcdCaFile?: string;
  readonly clusterEtcdCertFile?: string;
  readonly clusterEtcdKeyFile?: string;
  readonly clusterEtcdUsername?: string;
  readonly clusterEtcdPasswordFile?: string;
}

/** Options for an etcd3 client from the settings: endpoints, TLS, auth, deadlines. */
export function etcdClientOptions(
  config: EtcdStoreConfig,
  readFile: (path: string) => Buffer = (p) => readFileSync(p),
  clock: Clock = systemClock,
): IOptions {
  const hosts = [...(config.clusterEtcdEndpoints ?? [])];
  if (hosts.length === 0) {
    throw new SidecarError('CONFIG_INVALID', 'CLUSTER_ETCD_ENDPOINTS is not set');
  }
  const tlsWanted = hosts.some((h) => h.startsWith('https://'));
  const options: IOptions = {
    hosts,
    dialTimeout: DEFAULT_CALL_TIMEOUT_MS,
    // Streams (watches, lease keep-alives) live on; every unary call gets a deadline.
    defaultCallOptions: (ctx) =>
      ctx.isStream ? {} : { deadline: clock.now().getTime() + DEFAULT_CALL_TIMEOUT_MS },
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': RECONNECT_INITIAL_MS,
      'grpc.max_reconnect_backoff_ms': RECONNECT_MAX_MS,
    },
    faultHandling: {
      host: () =>
        circuitBreaker(handleWhen(isRecoverableError), {
          halfOpenAfter: MEMBER_SKIP_MS,
          breaker: new ConsecutiveBreaker(MEMBER_FAILURES_TO_SKIP),
        }),
      // etcd3 only calls next() on it (the first step is next()'s duration).
      watchBackoff: new ExponentialBackoff({
        initialDelay: RECONNECT_INITIAL_MS,
        maxDelay: RECONNECT_MAX_MS,
      }).next(),
    },
  };
  if (tlsWanted) {
    options.credentials = {
      rootCertificate: config.clusterEtcdCaFile
        ? readFile(config.clusterEtcdCaFile)
        : Buffer.from(tls.rootCertificates.join('\n')),
      ...(config.clusterEtcdCertFile && { certChain: readFile(config.clusterEtcdCertFile) }),
      ...(config.clusterEtcdKeyFile && { privateKey: readFile(config.clusterEtcdKeyFile) }),
    };
  }
  if (config.clusterEtcdUsername !== undefined && config.clusterEtcdPasswordFile !== undefined) {
    options.auth = {
      username: config.clusterEtcdUsername,
      // One trailing newline is the file's, not the password's.
      password: readFile(config.clusterEtcdPasswordFile)
        .toString('utf8')
        .replace(/\r?\n$/, ''),
    };
  }
  return options;
}

/** Reads CLUSTER_ENCRYPTION_KEY_FILE. Errors name the file, never its content. */
export function loadKeyring(
  path: string,
  readFile: (path: string) => Buffer = (p) => readFileSync(p),
): Keyring {
  let text: string;
  try {
    text = readFile(path).toString('utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new SidecarError(
      'CONFIG_INVALID',
      `CLUSTER_ENCRYPTION_KEY_FILE=${JSON.stringify(path)}: cannot read it (${code})`,
    );
  }
  try {
    return Keyring.parse(text);
  } catch (err) {
    throw new SidecarError(
      'CONFIG_INVALID',
      `CLUSTER_ENCRYPTION_KEY_FILE=${JSON.stringify(path)}: ${errorMessage(err)}; ${KEY_FILE_FORMAT}`,
    );
  }
}
