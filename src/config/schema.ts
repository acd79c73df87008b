/**
 * Every environment variable the sidecar reads, described once: its name,
 * aliases, documentation, default and parser. `loadConfig` reads them from
 * here and the settings tables in docs/configuration.md are generated from
 * here (`npm run docs`), so the two cannot drift.
 *
 * Schemas are pure string parsers. Their error messages are the "what would
 * be valid" half of a ConfigError line, so each starts with "expected".
 * Checks that touch the outside world (reading a file) live in `check`.
 */
import { posix } from 'node:path';

import cron from 'node-cron';
import { z } from 'zod';
import { parseAllowedDomains } from '../domain/allowed-domains.js';
import {
  isHostPort,
  parseEndpoints,
  parseStatusAddress,
  STATUS_ADDRESS_DEFAULT,
  STATUS_ADDRESS_EXPECTED,
  webhookUrlProblem,
} from '../domain/endpoints.js';
import { normalizeHostname } from '../domain/hostnames.js';
import {
  CHALLENGE_TYPES,
  DNS_PROVIDERS,
  normalizeTsigAlgorithm,
  TSIG_ALGORITHM_NAMES,
  type ChallengeType,
  type DnsProviderName,
  type TsigAlgorithm,
} from '../domain/challenges.js';
import { KEY_FILE_FORMAT, parseKeyFile } from '../domain/key-file.js';
import { PROFILE_NAME, PROFILE_NAME_EXPECTED } from '../domain/profiles.js';
import { KEY_TYPES, type KeyType } from '../domain/types.js';
import { DEFAULT_CONCURRENCY } from '../domain/types.js';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const PLATFORMS = ['static', 'rancher', 'docker'] as const;
export type PlatformName = (typeof PLATFORMS)[number];

export interface Config {
  /** DOMAINS as written; parse it with `parseDomainList`. */
  domains: string;
  /** A file in the DOMAINS syntax, re-read on every pass and watched. */
  domainsFile?: string;
  /** Domains every source may ask for (each with every name under it); empty: any. */
  allowedDomains: string[];
  staging: boolean;
  acmeEmail?: string;
  webroot: string;
  stateDir: string;
  /** Holds `live/` and `archive/` (what a web server reads); LIVE_DIR, else stateDir. */
  liveDir: string;
  keyType: KeyType;
  /** Unset: renew when a third of the lifetime remains. */
  renewBeforeDays?: number;
  /** 0: no discovery loop, only the schedule. */
  loopTimeSeconds: number;
  stagingDirectoryUrl: string;
  productionDirectoryUrl: string;
  /** ACME profile named by every order (a label may override it per certificate). */
  acmeProfile?: string;
  /** Path of a PEM file trusted, besides the system roots, for HTTPS to the CA. */
  acmeCaBundle?: string;
  /** `host:port`; host is IPv4, `[IPv6]` or a DNS name. */
  selfCheckAddress?: string;
  selfCheck: boolean;
  /** Five-field cron expression, fields separated by single spaces. */
  checkSchedule: string;
  acmeTimeoutMs: number;
  /** RFC 8555 section 7.3.4 External Account Binding; set together with eabHmacKey. */
  eabKid?: string;
  /** Secret: never log. */
  eabHmacKey?: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  platform: PlatformName;
  /** Rancher 1.x API base, as Rancher injects it (e.g. http://rancher:8080/v1). */
  cattleUrl?: string;
  cattleAllowInsecure: boolean;
  cattleAccessKey?: string;
  /** Secret: never log. */
  cattleSecretKey?: string;
  /** PEM file trusted for an https CATTLE_URL. */
  cattleCaBundle?: string;
  /** Pinned SHA-256 fingerprint of the Cattle server's certificate, 64 hex digits. */
  cattleCertSha256?: string;
  cattleTimeoutMs: number;
  /**
   * Absolute path of the Docker Engine's UNIX socket (from `unix://...`);
   * another DOCKER_HOST as given (refused with PLATFORM=docker).
   */
  dockerSocket: string;
  dockerTimeoutMs: number;
  /** Environment variable names read as hostname lists; empty: none. */
  dockerEnvHostnames: string[];
  dockerStoppedGraceMs: number;
  /** `key` or `key=value`; 'off': no container is signalled. */
  dockerReloadLabel: string;
  dockerReloadSignal: 'HUP' | 'USR1' | 'USR2';
  rateLimits: 'auto' | 'letsencrypt' | 'production' | 'off';
  ari: 'auto' | 'off';
  hookCommand?: string;
  /** Secret: may carry a token. */
  hookWebhookUrl?: string;
  hookWebhookProxy: boolean;
  combinedPemDir?: string;
  deployCheckEndpoints?: { host: string; port: number }[];
  /** Where the read-only status server listens, or 'off'. */
  statusAddress: { host: string; port: number } | 'off';
  renewCooldownSeconds: number;
  maxConcurrentOrders: number;
  /** etcd client URLs; set: cluster mode (shared state, one leader). */
  clusterEtcdEndpoints?: string[];
  /** Names the cluster's key prefix in etcd: `/acme-sidecar/<name>/`. */
  clusterName: string;
  /** This replica's name in the cluster. Unset: the hostname. */
  clusterNodeName?: string;
  /** Base64 32-byte key(s) sealing every value in etcd; required with clusterEtcdEndpoints. */
  clusterEncryptionKeyFile?: string;
  clusterLeaseTtlSeconds: number;
  clusterEtcdCaFile?: string;
  clusterEtcdCertFile?: string;
  clusterEtcdKeyFile?: string;
  clusterEtcdUsername?: string;
  /** The file's path; its content is secret. */
  clusterEtcdPasswordFile?: string;
  /** ACME_CHALLENGE: the challenge of certificates with no label and no wildcard. */
  acmeChallenge: ChallengeType;
  dnsProvider?: DnsProviderName;
  /** `host:port` of the primary that takes RFC 2136 updates. */
  rfc2136Nameserver?: string;
  rfc2136TsigKey?: string;
  /** Base64. Secret: never log. */
  rfc2136TsigSecret?: string;
  /** The file's path; its content is secret. */
  rfc2136TsigSecretFile?: string;
  rfc2136TsigAlgorithm: TsigAlgorithm;
  pdnsApiUrl?: string;
  /** Secret: never log. */
  pdnsApiKey?: string;
  /** The file's path; its content is secret. */
  pdnsApiKeyFile?: string;
  pdnsServerId: string;
  execPath?: string;
  execTimeoutMs: number;
  /** `host:port` entries; set: ask these instead of the zone's authoritative servers. */
  dnsResolvers?: string[];
  /** `host:port` entries; with dnsResolvers unset, who finds the zone and its servers. */
  dnsBootstrapResolvers?: string[];
  /** The port the zone's authoritative servers (from NS) are asked on. */
  dnsAuthoritativePort: number;
  dnsPropagationTimeoutMs: number;
  dnsPollingIntervalMs: number;
}

/** The sections of docs/configuration.md, in order; every setting is in one. */
export const SETTING_GROUPS = [
  'Core',
  'CA',
  'Schedule',
  'Hooks and deployment',
  'Status',
  'DNS-01',
  'Rancher',
  'Docker',
  'Cluster',
  'Logging',
] as const;
export type SettingGroup = (typeof SETTING_GROUPS)[number];

/** What defaults and checks may use instead of reaching for globals. */
export interface SettingContext {
  /** Uniform in [0, 1), like Math.random. */
  readonly random: () => number;
  /** Reads a file as UTF-8; throws if it cannot. */
  readonly readFile: (path: string) => string;
}

export interface Setting<K extends keyof Config = keyof Config> {
  /** The Config field this setting fills. */
  readonly key: K;
  readonly env: string;
  /** Other names accepted (tried in order after `env`), e.g. certbot's. */
  readonly aliases?: readonly string[];
  /** The docs/configuration.md section the setting is listed in. */
  readonly group: SettingGroup;
  /** One paragraph of Markdown for the settings table. */
  readonly description: string;
  /**
   * The default as the settings table shows it. Unless `defaultValue` is given, also
   * the string parsed when the variable is unset, so docs and behaviour agree.
   */
  readonly default?: string;
  /** A default that must be computed (e.g. randomized); `default` then only describes it. */
  readonly defaultValue?: (ctx: SettingContext) => string;
  /** Parses the trimmed value. */
  readonly schema: z.ZodType<NonNullable<Config[K]>, string>;
  /** The value never appears in errors or logs. */
  readonly secret?: boolean;
  /** Shows a bad value in errors with its secret parts hidden (e.g. a URL's credentials). */
  readonly redact?: (raw: string) => string;
  /** A check needing I/O; returns what would be valid, or undefined if fine. */
  check?(value: NonNullable<Config[K]>, ctx: SettingContext): string | undefined;
}

// ---------------------------------------------------------------- parsers

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z
    .string()
    .transform((s) => s.toLowerCase())
    .pipe(z.enum(values, { error: `expected one of ${values.join(', ')}` }));
}

const booleanSetting = z.stringbool({
  truthy: ['true', '1', 'yes'],
  falsy: ['false', '0', 'no'],
  case: 'insensitive',
  error: 'expected one of true, false, 1, 0, yes, no',
});

const DECIMAL = /^(?:\d+(?:\.\d*)?|\.\d+)$/;

function positiveNumber(expected: string, max: number) {
  return z
    .string()
    .regex(DECIMAL, { error: expected })
    .transform(Number)
    .refine((n) => n > 0 && n <= max, { error: expected });
}

function wholeNumber(expected: string, min: number, max: number) {
  return z
    .string()
    .regex(/^\d+$/, { error: expected })
    .transform(Number)
    .refine((n) => n >= min && n <= max, { error: expected });
}

const absolutePath = z
  .string()
  .refine((p) => posix.isAbsolute(p) && !p.includes('\0'), {
    error: 'expected an absolute path such as /var/www',
  })
  .transform((p) => {
    const normal = posix.normalize(p);
    return normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
  });

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

function isAcmeDirectoryUrl(s: string): boolean {
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    return false;
  }
  if (url.protocol === 'https:') return url.hostname !== '';
  return url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname);
}

const directoryUrl = z.string().refine(isAcmeDirectoryUrl, {
  error: 'expected an https:// URL (http:// only for localhost, 127.0.0.1 or [::1])',
});

/** A cluster or node name: one etcd key segment. */
const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const clusterName = z.string().refine((v) => CLUSTER_NAME.test(v) && !v.includes('..'), {
  error:
    'expected 1-63 letters, digits, `.`, `_` or `-`, starting with a letter or digit (no `..`)',
});

/** `http(s)://host:port`, nothing else (no credentials, path, query). */
function isEtcdEndpoint(s: string): boolean {
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    return false;
  }
  return (
    (url.protocol === 'http:' || url.protocol === 'https:') &&
    url.hostname !== '' &&
    url.port !== '' &&
    url.username === '' &&
    url.password === '' &&
    (url.pathname === '/' || url.pathname === '') &&
    url.search === '' &&
    url.hash === '' &&
    !s.endsWith('/')
  );
}

/** A comma-separated list, entries trimmed, empty entries dropped. */
const commaList = z.string().transform((v) =>
  v
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== ''),
);

const CRON_EXPECTED =
  'expected a 5-field cron expression (minute hour day-of-month month day-of-week), such as "17 3 * * *"';
const cronExpression = z
  .string()
  .transform((s) => s.split(/\s+/).join(' '))
  .refine((s) => s.split(' ').length === 5 && cron.validate(s), { error: CRON_EXPECTED });

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

/**
 * Reads the file a setting names and returns what `judge` says of its text
 * (what would be valid, or undefined if fine). An unreadable file is
 * `unreadable` plus the error code; the content never reaches a message.
 */
/** A file holding one secret (one trailing newline ignored): readable and not empty. */
function secretFileProblem(path: string, ctx: SettingContext): string | undefined {
  return fileProblem(path, ctx, 'expected a readable file holding the secret', (text) =>
    text.replace(/\r?\n$/, '') === ''
      ? 'expected a file holding the secret (it is empty)'
      : undefined,
  );
}

function fileProblem(
  path: string,
  { readFile }: SettingContext,
  unreadable: string,
  judge: (text: string) => string | undefined,
): string | undefined {
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return `${unreadable} (could not read it: ${code})`;
  }
  return judge(text);
}

function pemFileProblem(path: string, ctx: SettingContext): string | undefined {
  return fileProblem(
    path,
    ctx,
    'expected a readable PEM file containing a CERTIFICATE block',
    (text) =>
      PEM_CERTIFICATE.test(text)
        ? undefined
        : 'expected a PEM file containing a CERTIFICATE block (found none)',
  );
}

export const DOCKER_SOCKET_EXPECTED =
  'expected unix:// and an absolute socket path shorter than 108 bytes, such as unix:///var/run/docker.sock';

// --------------------------------------------------------------- settings

function setting<K extends keyof Config>(s: Setting<K>): Setting<K> {
  return s;
}

const settingsByKey: { readonly [K in keyof Config]-?: Setting<K> } = {
  domains: setting({
    key: 'domains',
    group: 'Core',
    env: 'DOMAINS',
    description:
      'Certificates to obtain. Entries are separated by commas or line breaks; each is a hostname, or several joined with `+` for one certificate with several names, optionally prefixed by a certificate name: `shop=shop.example.com+cdn.example.com`. Invalid entries are reported and skipped; the others go ahead.',
    default: '',
    schema: z.string(),
  }),
  domainsFile: setting({
    key: 'domainsFile',
    group: 'Core',
    env: 'DOMAINS_FILE',
    description:
      'A file with more certificates in the `DOMAINS` syntax (one entry per line; lines starting with `#` are comments), added to `DOMAINS`. Watched: changes apply without a restart. If it cannot be read, the last known certificates are kept.',
    schema: absolutePath,
  }),
  allowedDomains: setting({
    key: 'allowedDomains',
    group: 'Core',
    env: 'ALLOWED_DOMAINS',
    description:
      'Comma-separated domains certificates may be issued for; each allows itself and every name under it (`example.com` allows `shop.example.com`, not `badexample.com`; case and a trailing dot are ignored). Applies to every source: a `DOMAINS` entry outside it stops startup (exit code 2), a hostname from `DOMAINS_FILE` or a Rancher or Docker label outside it is refused (`not-allowed`) while the other certificates go ahead. Empty: any hostname (`check-config` warns about that with `PLATFORM=docker` or `rancher`, where anyone who can start a container or service can ask for a certificate).',
    default: '',
    schema: z
      .string()
      .transform(parseAllowedDomains)
      .refine((entries) => entries.every((e) => !e.includes('*') && normalizeHostname(e).ok), {
        error:
          'expected comma-separated domain names such as example.com,example.org (no wildcards: an entry already allows every name under it)',
      })
      .transform((entries) =>
        entries.map((e) => {
          const n = normalizeHostname(e);
          return n.ok ? n.hostname : e;
        }),
      ),
  }),
  platform: setting({
    key: 'platform',
    group: 'Core',
    env: 'PLATFORM',
    description:
      'Where hostnames come from and certificates go. `static`: hostnames from `DOMAINS`, certificates in `STATE_DIR` only. `rancher`: also hostnames from Rancher 1.x service labels, and every certificate pushed to the Cattle API (needs `CATTLE_URL`, `CATTLE_ACCESS_KEY`, `CATTLE_SECRET_KEY`). `docker`: also hostnames from container labels read through the Docker Engine socket (`DOCKER_HOST`), followed live through its events; certificates stay in `STATE_DIR` and labelled containers are signalled to reload them.',
    default: 'static',
    schema: oneOf(PLATFORMS),
  }),
  staging: setting({
    key: 'staging',
    group: 'Core',
    env: 'STAGING',
    description:
      'Stop at the staging CA (untrusted certificates, generous rate limits). Set to `false` to go on to the production CA once staging issuance works. Accepts `true`, `false`, `1`, `0`, `yes`, `no`.',
    default: 'true',
    schema: booleanSetting,
  }),
  acmeEmail: setting({
    key: 'acmeEmail',
    group: 'Core',
    env: 'ACME_EMAIL',
    aliases: ['CERTBOT_EMAIL', 'LETSENCRYPT_EMAIL'],
    description:
      'Contact address for the ACME account; the CA may send expiry and policy notices there.',
    schema: z.email({ error: 'expected an email address such as admin@example.com' }),
  }),
  webroot: setting({
    key: 'webroot',
    group: 'Core',
    env: 'WEBROOT',
    aliases: ['CERTBOT_WEBROOT'],
    description:
      'Directory shared with nginx. HTTP-01 challenge files are written under `.well-known/acme-challenge/` in it. Absolute path.',
    default: '/var/www',
    schema: absolutePath,
  }),
  stateDir: setting({
    key: 'stateDir',
    group: 'Core',
    env: 'STATE_DIR',
    description: 'Where the ACME account, private keys and certificates are kept. Absolute path.',
    default: '/etc/letsencrypt',
    schema: absolutePath,
  }),
  liveDir: setting({
    key: 'liveDir',
    group: 'Core',
    env: 'LIVE_DIR',
    description:
      'Where the certificates a web server reads are written: `live/<name>/{cert,chain,fullchain,privkey}.pem` and the versions they point at in `archive/` (kept together: `live/<name>` is a relative link into `archive/`). Unset: `STATE_DIR`. Set it to a directory outside `STATE_DIR` to give the web server only what it serves, never the ACME account keys, order records or control socket kept in `STATE_DIR` (the shipped docker-compose.yml does). Absolute path.',
    schema: absolutePath,
  }),
  keyType: setting({
    key: 'keyType',
    group: 'Core',
    env: 'KEY_TYPE',
    description: `Key type of new certificates: ${KEY_TYPES.map((k) => `\`${k}\``).join(', ')}.`,
    default: 'ecdsa-p384',
    schema: oneOf(KEY_TYPES),
  }),
  renewBeforeDays: setting({
    key: 'renewBeforeDays',
    group: 'Schedule',
    env: 'RENEW_BEFORE_DAYS',
    description:
      "Renew this many days before expiry (fractions allowed, e.g. `0.5`). Unset: renew when a third of the lifetime remains (half, under 10 days). Capped at half of each certificate's lifetime, so a value meant for 90-day certificates does not renew a 6-day one daily or on every pass; a capped value, or one at or above the lifetime, is warned about once per certificate, naming its lifetime. A value at or above the lifetime also yields to the CA renewal window (`ACME_ARI`).",
    schema: positiveNumber('expected a positive number of days, such as 30 or 0.5', 3650),
  }),
  renewCooldownSeconds: setting({
    key: 'renewCooldownSeconds',
    group: 'Schedule',
    env: 'RENEW_COOLDOWN',
    description:
      'Seconds after `acme-sidecar renew` forced a certificate before it forces that certificate again; a second `renew` sooner is refused with the time left, whatever `RATE_LIMITS` says. One forced renewal per certificate runs at a time. Remembered by the running daemon only (a restart forgets it). `0` keeps only the one-at-a-time rule.',
    default: '600',
    schema: wholeNumber(
      'expected a whole number of seconds from 0 to 86400, such as 600',
      0,
      86400,
    ),
  }),
  maxConcurrentOrders: setting({
    key: 'maxConcurrentOrders',
    group: 'Schedule',
    env: 'MAX_CONCURRENT_ORDERS',
    description:
      "Certificates a pass orders or renews at once (and `renew --all`). An order mostly waits on the CA, so a pass over many new certificates takes about their number over this many orders' time. `RATE_LIMITS` still caps how many orders a window allows.",
    default: String(DEFAULT_CONCURRENCY),
    schema: wholeNumber('expected a whole number from 1 to 64, such as 8', 1, 64),
  }),
  loopTimeSeconds: setting({
    key: 'loopTimeSeconds',
    group: 'Schedule',
    env: 'LOOP_TIME',
    description:
      'Seconds between discovery passes, which pick up new hostnames and missing certificates. `0` turns the loop off; only `CHECK_SCHEDULE` runs. Retries and renewals due sooner get a pass of their own.',
    default: '300',
    // A day at most: the daily schedule covers anything slower.
    schema: wholeNumber('expected a whole number of seconds from 0 to 86400', 0, 86400),
  }),
  checkSchedule: setting({
    key: 'checkSchedule',
    group: 'Schedule',
    env: 'CHECK_SCHEDULE',
    description:
      'When to check every certificate for renewal: a 5-field cron expression (minute hour day-of-month month day-of-week), e.g. `17 3 * * *`.',
    default: 'daily at a random time',
    // Randomized so that many sidecars do not hit the CA at the same minute.
    defaultValue: ({ random }) => {
      const pick = (n: number): number => Math.min(n - 1, Math.floor(random() * n));
      return `${pick(60)} ${pick(24)} * * *`;
    },
    schema: cronExpression,
  }),
  stagingDirectoryUrl: setting({
    key: 'stagingDirectoryUrl',
    group: 'CA',
    env: 'ACME_STAGING_DIRECTORY_URL',
    description:
      'ACME directory of the staging CA. `https://` (`http://` only for localhost, `127.0.0.1` or `[::1]`).',
    default: 'https://acme-staging-v02.api.letsencrypt.org/directory',
    schema: directoryUrl,
  }),
  productionDirectoryUrl: setting({
    key: 'productionDirectoryUrl',
    group: 'CA',
    env: 'ACME_PRODUCTION_DIRECTORY_URL',
    description:
      'ACME directory of the production CA. `https://` (`http://` only for localhost, `127.0.0.1` or `[::1]`).',
    default: 'https://acme-v02.api.letsencrypt.org/directory',
    schema: directoryUrl,
  }),
  acmeProfile: setting({
    key: 'acmeProfile',
    group: 'CA',
    env: 'ACME_PROFILE',
    description:
      "ACME profile named by every order, staging and production, such as Let's Encrypt's `classic`, `tlsserver` (45 days) or `shortlived` (160 hours). Checked against the profiles each CA lists in its directory (`meta.profiles`): a name the CA does not offer fails the certificate and names the ones on offer. The label `io.acme-sidecar.profile` sets it per certificate. A certificate issued under another profile is re-issued (`ProfileChanged`). Unset: the CA's default.",
    schema: z.string().regex(PROFILE_NAME, { error: PROFILE_NAME_EXPECTED }),
  }),
  hookCommand: setting({
    key: 'hookCommand',
    group: 'Hooks and deployment',
    env: 'HOOK_COMMAND',
    description:
      "Shell command run after a certificate changes in `live/` (like certbot's deploy hook), with `ACME_SIDECAR_CERT_NAME`, `ACME_SIDECAR_DOMAINS`, `ACME_SIDECAR_PHASE`, `ACME_SIDECAR_SERIAL`, `ACME_SIDECAR_CERT_PATH`, `ACME_SIDECAR_CHAIN_PATH`, `ACME_SIDECAR_FULLCHAIN_PATH`, `ACME_SIDECAR_KEY_PATH`, `RENEWED_LINEAGE` and `RENEWED_DOMAINS` set. A failure is logged and retried (3 attempts, with backoff), and never stops other certificates, so the command should be safe to run twice. `nginx -s reload` works where the sidecar shares nginx's PID namespace; the compose setup reloads from the nginx side instead.",
    schema: z.string(),
  }),
  hookWebhookUrl: setting({
    key: 'hookWebhookUrl',
    group: 'Hooks and deployment',
    env: 'HOOK_WEBHOOK_URL',
    description:
      'URL that receives a JSON event (`certificate.deployed`: name, hostnames, phase, serial, expiry, paths; never a key) after a certificate changes; retried with backoff. Secret: never logged.',
    schema: z.string().refine((u) => webhookUrlProblem(u) === undefined, {
      error: 'expected an http:// or https:// URL',
    }),
    secret: true,
  }),
  hookWebhookProxy: setting({
    key: 'hookWebhookProxy',
    group: 'Hooks and deployment',
    env: 'HOOK_WEBHOOK_PROXY',
    description:
      '`true`: send the webhook through the proxy in `HTTPS_PROXY`/`HTTP_PROXY` (`NO_PROXY` honoured). `false`: connect directly, whatever those say, so a proxy set for something else never sees the URL and its token.',
    default: 'false',
    schema: booleanSetting,
  }),
  combinedPemDir: setting({
    key: 'combinedPemDir',
    group: 'Hooks and deployment',
    env: 'COMBINED_PEM_DIR',
    description:
      'Also write `<dir>/<name>.pem` (full chain followed by the private key, mode 0600) for servers such as haproxy that want one file.',
    schema: absolutePath,
  }),
  deployCheckEndpoints: setting({
    key: 'deployCheckEndpoints',
    group: 'Hooks and deployment',
    env: 'DEPLOY_CHECK_ENDPOINTS',
    description:
      'Comma-separated `host:port` TLS endpoints (e.g. `nginx:443`) checked after every pass: each must serve the current certificate (SNI = its first hostname). One still serving an older certificate is reported as stale (log, `/status`, metric): renewed but never reloaded. Unset: no check.',
    schema: z
      .string()
      .refine(
        (v) => {
          try {
            return parseEndpoints(v).length > 0;
          } catch {
            return false;
          }
        },
        { error: 'expected host:port[,host:port...], IPv6 in brackets, such as nginx:443' },
      )
      .transform((v) => parseEndpoints(v)),
  }),
  rateLimits: setting({
    key: 'rateLimits',
    group: 'CA',
    env: 'RATE_LIMITS',
    description:
      "The CA rate-limit budget the sidecar keeps to (certificates per registered domain, duplicate certificates, failed validations, new orders), spent and kept in `STATE_DIR`; an order that would exceed it is not sent, and `/status` says when it will be possible. `auto`: Let's Encrypt's published limits when the CA is Let's Encrypt, none otherwise. `letsencrypt`: Let's Encrypt's production and staging limits for the production and staging CA, whatever their URL. `production`: the production limits for both (the strictest). `off`.",
    default: 'auto',
    schema: oneOf(['auto', 'letsencrypt', 'production', 'off'] as const),
  }),
  ari: setting({
    key: 'ari',
    group: 'CA',
    env: 'ACME_ARI',
    description:
      "ACME Renewal Information (RFC 9773). `auto`: when the CA's directory offers `renewalInfo`, ask it when to renew each certificate (the daemon again after the CA's Retry-After, clamped to 1 minute..6 hours; `acme-sidecar once` on every run; a certificate just issued first a tenth of its lifetime later, at most 6 hours), renew at a random time inside its window (never later than five sixths of the lifetime), and place renewals with `replaces` (Let's Encrypt exempts those from its rate limits). An explicit `RENEW_BEFORE_DAYS` still renews earlier when it comes first. A missing, failing or malformed answer falls back to the lifetime rule with one warning. `off`: the lifetime rule only.",
    default: 'auto',
    schema: oneOf(['auto', 'off'] as const),
  }),
  statusAddress: setting({
    key: 'statusAddress',
    group: 'Status',
    env: 'STATUS_ADDRESS',
    description:
      "Where `acme-sidecar run` serves its read-only status: `/` (status page), `/status` (JSON), `/metrics` (Prometheus, cert-manager metric names), `/healthz`, `/readyz`. `host:port`; `off` turns it off. Loopback by default: `/status` names containers, label values and internal addresses, and the image's HEALTHCHECK runs inside the container. To let Prometheus (or anything outside the container) scrape it, set `0.0.0.0:8080` and publish the port only where the scraper can reach it (see docs/operations.md).",
    default: STATUS_ADDRESS_DEFAULT,
    schema: z
      .string()
      .refine((v) => parseStatusAddress(v) !== undefined, { error: STATUS_ADDRESS_EXPECTED })
      .transform((v) => parseStatusAddress(v) ?? 'off'),
  }),
  cattleUrl: setting({
    key: 'cattleUrl',
    group: 'Rancher',
    env: 'CATTLE_URL',
    description:
      "Rancher API URL, injected by Rancher into a service labelled `io.rancher.container.create_agent: true` and `io.rancher.container.agent.role: environment`. `/v1` is used as `/v2-beta`, like Rancher's Go client.",
    schema: z.string().refine(
      (u) => {
        try {
          const url = new URL(u);
          return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
        } catch {
          return false;
        }
      },
      { error: 'expected an http:// or https:// URL such as http://rancher-server:8080/v1' },
    ),
  }),
  cattleAllowInsecure: setting({
    key: 'cattleAllowInsecure',
    group: 'Rancher',
    env: 'CATTLE_ALLOW_INSECURE',
    description:
      "`true` accepts a plain `http://` `CATTLE_URL` to a host other than loopback. Off by default: that connection carries the API secret key and every private key pushed to Rancher, readable and changeable by anything on the network between. Use `https://` (with `CATTLE_CA_BUNDLE` or `CATTLE_CERT_SHA256` for a private CA), or set this only where that network is trusted (Rancher's injected `http://rancher-server:8080/v1` on a private host network).",
    default: 'false',
    schema: booleanSetting,
  }),
  cattleAccessKey: setting({
    key: 'cattleAccessKey',
    group: 'Rancher',
    env: 'CATTLE_ACCESS_KEY',
    description: 'Rancher environment API access key (injected by Rancher).',
    schema: z.string(),
  }),
  cattleSecretKey: setting({
    key: 'cattleSecretKey',
    group: 'Rancher',
    env: 'CATTLE_SECRET_KEY',
    description: 'Rancher environment API secret key (injected by Rancher). Secret: never logged.',
    schema: z.string(),
    secret: true,
  }),
  cattleCaBundle: setting({
    key: 'cattleCaBundle',
    group: 'Rancher',
    env: 'CATTLE_CA_BUNDLE',
    description:
      'PEM file of CA certificates trusted, in addition to the system roots, for an `https://` `CATTLE_URL`.',
    schema: z.string(),
    check: (path, ctx) => pemFileProblem(path, ctx),
  }),
  cattleCertSha256: setting({
    key: 'cattleCertSha256',
    group: 'Rancher',
    env: 'CATTLE_CERT_SHA256',
    description:
      "Pin the Rancher server's TLS certificate: its SHA-256 fingerprint (64 hex digits, colons allowed, as `openssl x509 -fingerprint -sha256` prints it). A server presenting another certificate is refused.",
    schema: z
      .string()
      .transform((v) => v.replace(/:/g, '').toLowerCase())
      .refine((v) => /^[0-9a-f]{64}$/.test(v), {
        error: 'expected a SHA-256 fingerprint: 64 hex digits, colons allowed',
      }),
  }),
  cattleTimeoutMs: setting({
    key: 'cattleTimeoutMs',
    group: 'Rancher',
    env: 'CATTLE_TIMEOUT_SECONDS',
    description: 'Timeout of each request to the Rancher API, in seconds.',
    default: '10',
    schema: positiveNumber(
      'expected a positive number of seconds up to 600, such as 10',
      600,
    ).transform((s) => Math.round(s * 1000)),
  }),
  dockerSocket: setting({
    key: 'dockerSocket',
    group: 'Docker',
    env: 'DOCKER_HOST',
    description:
      "With `PLATFORM=docker`: the Docker Engine API, a UNIX socket as `unix:///path` (mount the host's `/var/run/docker.sock` into the sidecar). TCP is not supported.",
    default: 'unix:///var/run/docker.sock',
    // Only a unix:// value is checked here: another one (tcp://, for the
    // docker CLI) is kept as given and refused by loadConfig only with
    // PLATFORM=docker.
    schema: z
      .string()
      .refine(
        (v) => {
          if (!v.startsWith('unix://')) return true;
          const p = v.slice('unix://'.length);
          return posix.isAbsolute(p) && !p.includes('\0') && Buffer.byteLength(p) < 108;
        },
        { error: DOCKER_SOCKET_EXPECTED },
      )
      .transform((v) => (v.startsWith('unix://') ? posix.normalize(v.slice('unix://'.length)) : v)),
  }),
  dockerTimeoutMs: setting({
    key: 'dockerTimeoutMs',
    group: 'Docker',
    env: 'DOCKER_TIMEOUT_SECONDS',
    description: 'Timeout of each request to the Docker Engine API, in seconds.',
    default: '10',
    schema: positiveNumber(
      'expected a positive number of seconds up to 600, such as 10',
      600,
    ).transform((s) => Math.max(1, Math.round(s * 1000))),
  }),
  dockerEnvHostnames: setting({
    key: 'dockerEnvHostnames',
    group: 'Docker',
    env: 'DOCKER_ENV_HOSTNAMES',
    description:
      'With `PLATFORM=docker`: container environment variables read as hostnames, as nginx-proxy users set them, e.g. `LETSENCRYPT_HOST,VIRTUAL_HOST`. The first listed variable a container sets is one certificate (named after its first hostname) for the comma-separated hostnames in it. Unset: none, since `VIRTUAL_HOST` often names internal hosts; only the listed variables are ever read.',
    default: '',
    schema: commaList.refine(
      (names) => names.every((n) => /^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(n)),
      {
        error:
          'expected comma-separated environment variable names, such as LETSENCRYPT_HOST,VIRTUAL_HOST',
      },
    ),
  }),
  dockerStoppedGraceMs: setting({
    key: 'dockerStoppedGraceMs',
    group: 'Docker',
    env: 'DOCKER_STOPPED_GRACE_HOURS',
    description:
      "With `PLATFORM=docker`: hours a stopped or removed container's hostnames are still renewed (fractions allowed; `0`: dropped at once). Stopped containers count from when they stopped; removed ones from when the sidecar first noticed, kept in the store so a restart or `once` goes on counting from then. Certificates already in `live/` are never deleted.",
    default: '168',
    schema: z
      .string()
      .regex(DECIMAL, { error: 'expected a number of hours from 0 to 87600, such as 168 or 0.5' })
      .transform(Number)
      .refine((h) => h >= 0 && h <= 87600, {
        error: 'expected a number of hours from 0 to 87600, such as 168 or 0.5',
      })
      .transform((h) => Math.round(h * 3600_000)),
  }),
  dockerReloadLabel: setting({
    key: 'dockerReloadLabel',
    group: 'Docker',
    env: 'DOCKER_RELOAD_LABEL',
    description:
      'With `PLATFORM=docker`: running containers with this label (`key` or `key=value`) are sent `DOCKER_RELOAD_SIGNAL` through the Engine API after a certificate in `live/` changes, so a stock nginx reloads it. `off`: none.',
    default: 'io.acme-sidecar.reload=true',
    schema: z
      .string()
      .refine(
        (v) =>
          v.toLowerCase() === 'off' ||
          /^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}(?:=[^\s,]{0,255})?$/.test(v),
        {
          error:
            'expected a label as key or key=value, such as io.acme-sidecar.reload=true, or off',
        },
      )
      .transform((v) => (v.toLowerCase() === 'off' ? 'off' : v)),
  }),
  dockerReloadSignal: setting({
    key: 'dockerReloadSignal',
    group: 'Docker',
    env: 'DOCKER_RELOAD_SIGNAL',
    description:
      'Signal sent to the `DOCKER_RELOAD_LABEL` containers: `HUP` (nginx), `USR1`, `USR2` (haproxy in master-worker mode).',
    default: 'HUP',
    schema: z
      .string()
      .transform((s) => s.toUpperCase().replace(/^SIG/, ''))
      .pipe(z.enum(['HUP', 'USR1', 'USR2'], { error: 'expected one of HUP, USR1, USR2' })),
  }),
  acmeCaBundle: setting({
    key: 'acmeCaBundle',
    group: 'CA',
    env: 'ACME_CA_BUNDLE',
    description:
      "PEM file of CA certificates trusted, in addition to Node's default roots (and `NODE_EXTRA_CA_CERTS`, as without this setting), for HTTPS to the ACME server (e.g. a test CA such as Pebble's).",
    schema: z.string(),
    check: (path, ctx) => pemFileProblem(path, ctx),
  }),
  acmeTimeoutMs: setting({
    key: 'acmeTimeoutMs',
    group: 'CA',
    env: 'ACME_TIMEOUT_SECONDS',
    description: 'Timeout of each request to the ACME server, in seconds.',
    default: '30',
    schema: positiveNumber('expected a positive number of seconds up to 3600, such as 30', 3600)
      .transform((s) => Math.round(s * 1000))
      .refine((ms) => ms > 0, { error: 'expected at least 0.001 seconds' }),
  }),
  eabKid: setting({
    key: 'eabKid',
    group: 'CA',
    env: 'EAB_KID',
    description:
      'External Account Binding key id, for CAs that require one (RFC 8555 section 7.3.4). Set together with `EAB_HMAC_KEY`.',
    schema: z.string(),
  }),
  eabHmacKey: setting({
    key: 'eabHmacKey',
    group: 'CA',
    env: 'EAB_HMAC_KEY',
    description:
      'External Account Binding HMAC key, base64url as given by the CA. Set together with `EAB_KID`.',
    schema: z.string().regex(/^[A-Za-z0-9_\-+/]+={0,2}$/, {
      error: 'expected the base64url-encoded HMAC key given by the CA',
    }),
    secret: true,
  }),
  selfCheck: setting({
    key: 'selfCheck',
    group: 'Core',
    env: 'SELF_CHECK',
    description:
      'Before asking the CA to validate, fetch each challenge file over HTTP ourselves, so a broken nginx or DNS setup fails fast without using up CA rate limits.',
    default: 'true',
    schema: booleanSetting,
  }),
  selfCheckAddress: setting({
    key: 'selfCheckAddress',
    group: 'Core',
    env: 'SELF_CHECK_ADDRESS',
    description:
      '`host:port` the self-check connects to (e.g. `nginx:80`), sending the hostname being validated in the Host header. Unset: connect to the hostname itself, as the CA does.',
    schema: z.string().refine(isHostPort, {
      error: 'expected host:port, such as nginx:80, 10.0.0.5:80 or [fd00::5]:80 (port 1-65535)',
    }),
  }),
  logLevel: setting({
    key: 'logLevel',
    group: 'Logging',
    env: 'LOG_LEVEL',
    description: `Least severe log level written: ${LOG_LEVELS.map((l) => `\`${l}\``).join(', ')}.`,
    default: 'info',
    schema: oneOf(LOG_LEVELS),
  }),
  logFormat: setting({
    key: 'logFormat',
    group: 'Logging',
    env: 'LOG_FORMAT',
    description: 'Log line format: `json` (one object per line) or `text` (for people).',
    default: 'json',
    schema: oneOf(LOG_FORMATS),
  }),
  clusterEtcdEndpoints: setting({
    key: 'clusterEtcdEndpoints',
    group: 'Cluster',
    env: 'CLUSTER_ETCD_ENDPOINTS',
    description:
      'Cluster mode: comma-separated client URLs of an etcd v3 cluster (3.4 or later), e.g. `https://etcd-1:2379,https://etcd-2:2379,https://etcd-3:2379`. Every sidecar pointed at the same etcd and `CLUSTER_NAME` shares accounts, certificates and locks there (private keys encrypted with `CLUSTER_ENCRYPTION_KEY_FILE`). Unset: a single sidecar with its state in `STATE_DIR`.',
    schema: commaList
      .refine((urls) => urls.length > 0 && urls.every(isEtcdEndpoint), {
        error:
          'expected comma-separated http:// or https:// URLs with a port and nothing else, such as https://etcd-1:2379,https://etcd-2:2379 (credentials go in CLUSTER_ETCD_USERNAME and CLUSTER_ETCD_PASSWORD_FILE)',
      })
      .refine((urls) => new Set(urls.map((u) => u.split(':')[0])).size === 1, {
        error: 'expected every URL to use the same scheme (all http:// or all https://)',
      }),
    redact: (raw) => raw.replace(/\/\/[^/@,]*@/g, '//***@'),
  }),
  clusterName: setting({
    key: 'clusterName',
    group: 'Cluster',
    env: 'CLUSTER_NAME',
    description:
      'Cluster mode: the name of this cluster of sidecars. Its state lives under `/acme-sidecar/<name>/` in etcd, so several clusters can share one etcd.',
    default: 'default',
    schema: clusterName,
  }),
  clusterNodeName: setting({
    key: 'clusterNodeName',
    group: 'Cluster',
    env: 'CLUSTER_NODE_NAME',
    description:
      "Cluster mode: this sidecar's name among its peers (leader election, `/status`). Unset: the machine's hostname. Must differ between sidecars.",
    schema: clusterName,
  }),
  clusterEncryptionKeyFile: setting({
    key: 'clusterEncryptionKeyFile',
    group: 'Cluster',
    env: 'CLUSTER_ENCRYPTION_KEY_FILE',
    description:
      'Cluster mode (required): a file, identical on every sidecar, holding a base64-encoded 32-byte key, e.g. made with `openssl rand -base64 32`. Private keys are encrypted with it (AES-256-GCM) before they reach etcd, and every other value is authenticated with it. To rotate, put the new key on the first line and keep the old one on the next: the first line encrypts, every line decrypts.',
    schema: absolutePath,
    check: (path, ctx) =>
      fileProblem(path, ctx, KEY_FILE_FORMAT, (text) => {
        try {
          parseKeyFile(text);
          return undefined;
        } catch (err) {
          // The parser's messages name line numbers and lengths, never content.
          return `${KEY_FILE_FORMAT} (${(err as Error).message})`;
        }
      }),
  }),
  clusterLeaseTtlSeconds: setting({
    key: 'clusterLeaseTtlSeconds',
    group: 'Cluster',
    env: 'CLUSTER_LEASE_TTL',
    description:
      "Cluster mode: seconds of the etcd leases behind the leader's term, node registrations and locks. A sidecar that dies or loses etcd gives up its locks and leadership within about this long.",
    default: '15',
    schema: wholeNumber('expected a whole number of seconds from 2 to 300, such as 15', 2, 300),
  }),
  clusterEtcdCaFile: setting({
    key: 'clusterEtcdCaFile',
    group: 'Cluster',
    env: 'CLUSTER_ETCD_CA_FILE',
    description:
      "PEM file of the CA that signed the etcd servers' certificates, for `https://` `CLUSTER_ETCD_ENDPOINTS`. Unset: the system roots.",
    schema: absolutePath,
    check: (path, ctx) => pemFileProblem(path, ctx),
  }),
  clusterEtcdCertFile: setting({
    key: 'clusterEtcdCertFile',
    group: 'Cluster',
    env: 'CLUSTER_ETCD_CERT_FILE',
    description:
      'PEM client certificate for etcd (client-certificate authentication), with `CLUSTER_ETCD_KEY_FILE`.',
    schema: absolutePath,
    check: (path, ctx) => pemFileProblem(path, ctx),
  }),
  clusterEtcdKeyFile: setting({
    key: 'clusterEtcdKeyFile',
    group: 'Cluster',
    env: 'CLUSTER_ETCD_KEY_FILE',
    description: 'PEM private key of `CLUSTER_ETCD_CERT_FILE`.',
    schema: absolutePath,
    check: (path, ctx) =>
      fileProblem(
        path,
        ctx,
        'expected a readable PEM file containing a PRIVATE KEY block',
        (text) =>
          /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/.test(text)
            ? undefined
            : 'expected a PEM file containing a PRIVATE KEY block (found none)',
      ),
  }),
  clusterEtcdUsername: setting({
    key: 'clusterEtcdUsername',
    group: 'Cluster',
    env: 'CLUSTER_ETCD_USERNAME',
    description: 'etcd user (etcd password authentication), with `CLUSTER_ETCD_PASSWORD_FILE`.',
    schema: z.string(),
  }),
  clusterEtcdPasswordFile: setting({
    key: 'clusterEtcdPasswordFile',
    group: 'Cluster',
    env: 'CLUSTER_ETCD_PASSWORD_FILE',
    description:
      "A file holding the etcd user's password (one trailing newline is ignored). The password is never logged.",
    schema: absolutePath,
    check: (path, ctx) =>
      fileProblem(path, ctx, 'expected a readable file holding the password', (text) =>
        text.replace(/\r?\n$/, '') === ''
          ? 'expected a file holding the password (it is empty)'
          : undefined,
      ),
  }),
  acmeChallenge: setting({
    key: 'acmeChallenge',
    group: 'DNS-01',
    env: 'ACME_CHALLENGE',
    description:
      'How the CA validates names: `http-01` (a file nginx serves), `dns-01` (a TXT record through `DNS_PROVIDER`) or `dns-persist-01` (one TXT record `_validation-persist.<name>` the operator sets once, naming the CA and our account; `check-config` and `/status` print it; no DNS change per order, draft-ietf-acme-dns-persist). The label `io.acme-sidecar.challenge` sets it per certificate. A certificate with a wildcard name (`*.example.com`) uses `dns-01`, unless it asks for `dns-persist-01` (its record then carries `policy=wildcard`). See docs/dns-01.md.',
    default: 'http-01',
    schema: oneOf(CHALLENGE_TYPES),
  }),
  dnsProvider: setting({
    key: 'dnsProvider',
    group: 'DNS-01',
    env: 'DNS_PROVIDER',
    description:
      "Where DNS-01 TXT records are written: `rfc2136` (dynamic updates signed with TSIG: BIND, Knot, PowerDNS...), `pdns` (the PowerDNS Authoritative HTTP API) or `exec` (a script, lego's convention). Unset: certificates that need DNS-01 fail with `DNS_PROVIDER_MISSING`, the others carry on.",
    schema: oneOf(DNS_PROVIDERS),
  }),
  rfc2136Nameserver: setting({
    key: 'rfc2136Nameserver',
    group: 'DNS-01',
    env: 'RFC2136_NAMESERVER',
    description:
      '`host:port` (or `host`, port 53) of the primary name server that takes RFC 2136 updates for the zone. Required with `DNS_PROVIDER=rfc2136`.',
    schema: z
      .string()
      .transform((v) => (isHostPort(v) ? v : `${v}:53`))
      .refine(isHostPort, {
        error: 'expected host:port or host, such as ns1.example.com:53 or 10.0.0.53',
      }),
  }),
  rfc2136TsigKey: setting({
    key: 'rfc2136TsigKey',
    group: 'DNS-01',
    env: 'RFC2136_TSIG_KEY',
    description:
      'Name of the TSIG key the server knows (`key "<name>" { ... };` in BIND). Required with `DNS_PROVIDER=rfc2136`, with `RFC2136_TSIG_SECRET` or `RFC2136_TSIG_SECRET_FILE` (updates are always signed).',
    schema: z.string().regex(/^[A-Za-z0-9._-]{1,253}$/, {
      error: 'expected a key name such as acme-key. (letters, digits, ".", "_", "-")',
    }),
  }),
  rfc2136TsigSecret: setting({
    key: 'rfc2136TsigSecret',
    group: 'DNS-01',
    env: 'RFC2136_TSIG_SECRET',
    description:
      "The TSIG key's secret, base64 as `tsig-keygen` prints it. Secret: never logged, never in `/status` or hook environments.",
    schema: z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, {
      error: 'expected the base64 secret tsig-keygen prints',
    }),
    secret: true,
  }),
  rfc2136TsigSecretFile: setting({
    key: 'rfc2136TsigSecretFile',
    group: 'DNS-01',
    env: 'RFC2136_TSIG_SECRET_FILE',
    description:
      'A file holding `RFC2136_TSIG_SECRET` (one trailing newline ignored), for Docker or Kubernetes secrets. Not with `RFC2136_TSIG_SECRET`.',
    schema: absolutePath,
    check: secretFileProblem,
  }),
  rfc2136TsigAlgorithm: setting({
    key: 'rfc2136TsigAlgorithm',
    group: 'DNS-01',
    env: 'RFC2136_TSIG_ALGORITHM',
    description: `TSIG algorithm: ${TSIG_ALGORITHM_NAMES.map((a) => `\`${a}\``).join(', ')}, with or without the trailing dot (lego's names).`,
    default: 'hmac-sha256.',
    schema: z
      .string()
      .transform((v) => normalizeTsigAlgorithm(v) ?? '')
      .pipe(
        z.enum(TSIG_ALGORITHM_NAMES, {
          error: `expected one of ${TSIG_ALGORITHM_NAMES.join(', ')} (the trailing dot is optional)`,
        }),
      ),
  }),
  pdnsApiUrl: setting({
    key: 'pdnsApiUrl',
    group: 'DNS-01',
    env: 'PDNS_API_URL',
    description:
      'Base URL of the PowerDNS Authoritative HTTP API (its `webserver-address`/`-port`), such as `http://pdns:8081`. Required with `DNS_PROVIDER=pdns`.',
    schema: z.string().refine(
      (u) => {
        try {
          const url = new URL(u);
          return (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '';
        } catch {
          return false;
        }
      },
      {
        error: 'expected an http:// or https:// URL without credentials, such as http://pdns:8081',
      },
    ),
  }),
  pdnsApiKey: setting({
    key: 'pdnsApiKey',
    group: 'DNS-01',
    env: 'PDNS_API_KEY',
    description:
      'The PowerDNS `api-key`, sent as `X-API-Key`. Secret: never logged, never in `/status` or hook environments.',
    schema: z.string(),
    secret: true,
  }),
  pdnsApiKeyFile: setting({
    key: 'pdnsApiKeyFile',
    group: 'DNS-01',
    env: 'PDNS_API_KEY_FILE',
    description:
      'A file holding `PDNS_API_KEY` (one trailing newline ignored). Not with `PDNS_API_KEY`.',
    schema: absolutePath,
    check: secretFileProblem,
  }),
  pdnsServerId: setting({
    key: 'pdnsServerId',
    group: 'DNS-01',
    env: 'PDNS_SERVER_ID',
    description: 'The PowerDNS server id in API paths (`/api/v1/servers/<id>`).',
    default: 'localhost',
    schema: z.string().regex(/^[A-Za-z0-9._-]{1,63}$/, {
      error: 'expected a server id such as localhost',
    }),
  }),
  execPath: setting({
    key: 'execPath',
    group: 'DNS-01',
    env: 'EXEC_PATH',
    description:
      "With `DNS_PROVIDER=exec`, a program run as `EXEC_PATH present <fqdn> <value>` and `EXEC_PATH cleanup <fqdn> <value>` (lego's exec convention; `<fqdn>` ends with a dot). It must add the value to the TXT record set, never replace it, and exit 0. The DNS secrets are not in its environment.",
    schema: absolutePath,
  }),
  execTimeoutMs: setting({
    key: 'execTimeoutMs',
    group: 'DNS-01',
    env: 'EXEC_TIMEOUT',
    description: 'Seconds `EXEC_PATH` may run before it is killed and the step fails.',
    default: '60',
    schema: positiveNumber(
      'expected a positive number of seconds up to 3600, such as 60',
      3600,
    ).transform((s) => Math.round(s * 1000)),
  }),
  dnsResolvers: setting({
    key: 'dnsResolvers',
    group: 'DNS-01',
    env: 'DNS_RESOLVERS',
    description:
      'Comma-separated `host:port` DNS servers that must all answer the TXT value before the CA is asked. Unset: every authoritative server of the zone, found through SOA and NS with `DNS_BOOTSTRAP_RESOLVERS` (default the system resolver) and asked on `DNS_AUTHORITATIVE_PORT`.',
    schema: commaList.refine((l) => l.length > 0 && l.every(isHostPort), {
      error: 'expected comma-separated host:port entries, such as 10.0.0.53:53,[fd00::53]:53',
    }),
  }),
  dnsBootstrapResolvers: setting({
    key: 'dnsBootstrapResolvers',
    group: 'DNS-01',
    env: 'DNS_BOOTSTRAP_RESOLVERS',
    description:
      'Comma-separated `host:port` resolvers that, with `DNS_RESOLVERS` unset, find the zone of `_acme-challenge.<name>` (SOA), its name servers (NS and their A records) and follow a CNAME on it. Unset: the system resolver (`/etc/resolv.conf`). For a sidecar whose system resolver does not see the zone (split horizon).',
    schema: commaList.refine((l) => l.length > 0 && l.every(isHostPort), {
      error: 'expected comma-separated host:port entries, such as 10.0.0.53:53,[fd00::53]:53',
    }),
  }),
  dnsAuthoritativePort: setting({
    key: 'dnsAuthoritativePort',
    group: 'DNS-01',
    env: 'DNS_AUTHORITATIVE_PORT',
    description:
      'With `DNS_RESOLVERS` unset, the port on which each authoritative server of the zone (an address of one of its NS names) is asked for the TXT value. NS records carry no port, so this is 53 for every server on the Internet; a lab whose name servers listen elsewhere sets it.',
    default: '53',
    schema: wholeNumber('expected a port number from 1 to 65535, such as 53', 1, 65535),
  }),
  dnsPropagationTimeoutMs: setting({
    key: 'dnsPropagationTimeoutMs',
    group: 'DNS-01',
    env: 'DNS_PROPAGATION_TIMEOUT',
    description:
      'Seconds to wait for every server to answer the TXT value; past it the certificate fails with `DNS_PROPAGATION_TIMEOUT` (the CA is not asked) and is retried with backoff.',
    default: '120',
    schema: positiveNumber(
      'expected a positive number of seconds up to 3600, such as 120',
      3600,
    ).transform((s) => Math.round(s * 1000)),
  }),
  dnsPollingIntervalMs: setting({
    key: 'dnsPollingIntervalMs',
    group: 'DNS-01',
    env: 'DNS_POLLING_INTERVAL',
    description: 'Seconds between two rounds of TXT queries while waiting for propagation.',
    default: '2',
    schema: positiveNumber(
      'expected a positive number of seconds up to 600, such as 2',
      600,
    ).transform((s) => Math.round(s * 1000)),
  }),
};

/** Every setting, in declaration order (docs/configuration.md lists them by group). */
export const SETTINGS: readonly Setting[] = Object.values(settingsByKey) as Setting[];

/**
 * Every variable name (and alias) of a setting marked secret: the hook
 * command's environment drops all of them, so a setting marked secret here
 * never reaches a child process, with no second list to keep in step.
 */
export const SECRET_ENV_NAMES: readonly string[] = SETTINGS.filter(
  (s) => s.secret === true,
).flatMap((s) => [s.env, ...(s.aliases ?? [])]);
