import { readFileSync } from 'node:fs';

import { disallowedHostnames } from '../domain/allowed-domains.js';
import { ConfigError, type ConfigProblem } from '../domain/errors.js';
import { parseDomainList } from '../domain/hostnames.js';
import {
  DOCKER_SOCKET_EXPECTED,
  SETTINGS,
  type Config,
  type Setting,
  type SettingContext,
} from './schema.js';

export interface LoadOptions {
  /** Source of randomness for randomized defaults (CHECK_SCHEDULE). Default Math.random. */
  readonly random?: () => number;
  /** Reads a file as UTF-8 (ACME_CA_BUNDLE). Default fs.readFileSync. */
  readonly readFile?: (path: string) => string;
}

const REDACTED = '***';

/** The first of `env`, then the aliases, that is set to something other than blanks. */
function lookup(
  env: Readonly<Record<string, string | undefined>>,
  s: Setting,
): { variable: string; raw: string } | undefined {
  for (const variable of [s.env, ...(s.aliases ?? [])]) {
    const raw = env[variable];
    if (raw !== undefined && raw.trim() !== '') return { variable, raw };
  }
  return undefined;
}

/**
 * Reads every setting in SETTINGS from `env`. Collects every problem before
 * failing, so one start-up shows them all, then throws a ConfigError naming
 * each variable, its value (`***` for secrets) and what would be valid.
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  opts: LoadOptions = {},
): Config {
  const ctx: SettingContext = {
    random: opts.random ?? Math.random,
    readFile: opts.readFile ?? ((path) => readFileSync(path, 'utf8')),
  };
  const problems: ConfigProblem[] = [];
  const values: Record<string, unknown> = {};
  const setVariables = new Map<keyof Config, string>();

  for (const s of SETTINGS) {
    const found = lookup(env, s);
    if (found !== undefined) setVariables.set(s.key, found.variable);
    const raw = found?.raw ?? s.defaultValue?.(ctx) ?? s.default;
    if (raw === undefined) continue;
    // Problems with defaults are our bugs, but still reported under the name.
    const variable = found?.variable ?? s.env;
    const shown = s.secret === true ? REDACTED : (s.redact?.(raw) ?? raw);
    const parsed = s.schema.safeParse(raw.trim());
    if (!parsed.success) {
      const expected = [...new Set(parsed.error.issues.map((i) => i.message))].join('; ');
      problems.push({ variable, value: shown, expected });
      continue;
    }
    const checkProblem = s.check?.(parsed.data, ctx);
    if (checkProblem !== undefined) {
      problems.push({ variable, value: shown, expected: checkProblem });
      continue;
    }
    values[s.key] = parsed.data;
  }

  // live/ and archive/ stay in STATE_DIR unless LIVE_DIR moves them out.
  if (values.liveDir === undefined && typeof values.stateDir === 'string') {
    values.liveDir = values.stateDir;
  }

  // ALLOWED_DOMAINS covers DOMAINS too: an entry outside it is a mistake to
  // fix before anything runs (labels and DOMAINS_FILE are refused at runtime).
  const allowed = values.allowedDomains as string[] | undefined;
  if (allowed?.length && typeof values.domains === 'string') {
    const allowedText = allowed.join(',');
    for (const spec of parseDomainList(values.domains, 'env:DOMAINS').specs) {
      const outside = disallowedHostnames(spec.domains, allowed);
      if (outside.length === 0) continue;
      const entry =
        spec.domains.length === 1 && spec.name === spec.domains[0]
          ? spec.name
          : `${spec.name}=${spec.domains.join('+')}`;
      problems.push({
        variable: setVariables.get('domains') ?? 'DOMAINS',
        value: entry,
        expected: `expected hostnames under ALLOWED_DOMAINS=${JSON.stringify(allowedText)}, but ${outside.join(', ')} ${outside.length > 1 ? 'are' : 'is'} outside it; add the domain to ALLOWED_DOMAINS or remove the entry`,
      });
    }
  }

  // The Rancher platform cannot work without what Rancher injects.
  if (values.platform === 'rancher') {
    for (const [key, variable] of [
      ['cattleUrl', 'CATTLE_URL'],
      ['cattleAccessKey', 'CATTLE_ACCESS_KEY'],
      ['cattleSecretKey', 'CATTLE_SECRET_KEY'],
    ] as const) {
      if (!setVariables.has(key)) {
        problems.push({
          variable,
          value: undefined,
          expected:
            'expected to be set with PLATFORM=rancher (Rancher injects it into a service labelled io.rancher.container.agent.role=environment)',
        });
      }
    }
  }

  // A plain-http Rancher API off this host carries the API secret and every
  // private key pushed, in the clear: refused unless asked for by name.
  if (
    values.platform === 'rancher' &&
    typeof values.cattleUrl === 'string' &&
    values.cattleAllowInsecure !== true &&
    isPlainHttpOffHost(values.cattleUrl)
  ) {
    problems.push({
      variable: setVariables.get('cattleUrl') ?? 'CATTLE_URL',
      value: values.cattleUrl.replace(/\/\/[^/@]*@/, '//***@'),
      expected:
        'expected an https:// URL (http:// only for localhost, 127.0.0.1 or [::1]); the connection carries the API secret key and every private key pushed. Set CATTLE_ALLOW_INSECURE=true to accept http:// on a trusted network',
    });
  }

  // DOCKER_HOST may point the docker CLI elsewhere (tcp://) when the sidecar
  // does not use Docker; with PLATFORM=docker it must be the engine's socket.
  if (values.platform === 'docker' && typeof values.dockerSocket === 'string') {
    if (!values.dockerSocket.startsWith('/')) {
      problems.push({
        variable: setVariables.get('dockerSocket') ?? 'DOCKER_HOST',
        value: values.dockerSocket,
        expected: `${DOCKER_SOCKET_EXPECTED} (PLATFORM=docker reads the engine through its UNIX socket only)`,
      });
    }
  }

  // External Account Binding needs both halves (RFC 8555 section 7.3.4).
  const kid = setVariables.get('eabKid');
  const hmac = setVariables.get('eabHmacKey');
  if ((kid === undefined) !== (hmac === undefined)) {
    const missing = kid === undefined ? 'EAB_KID' : 'EAB_HMAC_KEY';
    const present = kid ?? hmac ?? '';
    // A present-but-invalid half is already reported; once fixed, this follows.
    if (!problems.some((p) => p.variable === present)) {
      problems.push({
        variable: missing,
        value: undefined,
        expected: `expected to be set together with ${present}`,
      });
    }
  }

  // Cluster mode (etcd): what goes with the endpoints, and what goes together.
  const pairs = [
    [
      'clusterEtcdCertFile',
      'CLUSTER_ETCD_CERT_FILE',
      'clusterEtcdKeyFile',
      'CLUSTER_ETCD_KEY_FILE',
    ],
    [
      'clusterEtcdUsername',
      'CLUSTER_ETCD_USERNAME',
      'clusterEtcdPasswordFile',
      'CLUSTER_ETCD_PASSWORD_FILE',
    ],
  ] as const;
  for (const [a, aName, b, bName] of pairs) {
    if (setVariables.has(a) !== setVariables.has(b)) {
      const [missing, present] = setVariables.has(a) ? [bName, aName] : [aName, bName];
      problems.push({
        variable: missing,
        value: undefined,
        expected: `expected to be set together with ${present}`,
      });
    }
  }
  const endpoints = values.clusterEtcdEndpoints as string[] | undefined;
  if (setVariables.has('clusterEtcdEndpoints')) {
    if (!setVariables.has('clusterEncryptionKeyFile')) {
      problems.push({
        variable: 'CLUSTER_ENCRYPTION_KEY_FILE',
        value: undefined,
        expected:
          'expected to be set with CLUSTER_ETCD_ENDPOINTS: a file holding a base64-encoded 32-byte key (`openssl rand -base64 32`), the same on every sidecar',
      });
    }
    const tlsOnly = (['clusterEtcdCaFile', 'clusterEtcdCertFile'] as const).filter((k) =>
      setVariables.has(k),
    );
    if (endpoints?.[0]?.startsWith('http://') && tlsOnly.length > 0) {
      problems.push({
        variable: 'CLUSTER_ETCD_ENDPOINTS',
        value: endpoints.join(','),
        expected: `expected https:// URLs, since ${tlsOnly.map((k) => setVariables.get(k)).join(' and ')} ${tlsOnly.length > 1 ? 'are' : 'is'} set`,
      });
    }
  }

  // DNS-01: what each provider cannot work without.
  const needs = (key: keyof Config, variable: string, why: string): void => {
    if (!setVariables.has(key)) {
      problems.push({ variable, value: undefined, expected: `expected to be set ${why}` });
    }
  };
  const provider = values.dnsProvider;
  if (provider === 'rfc2136') {
    needs(
      'rfc2136Nameserver',
      'RFC2136_NAMESERVER',
      'with DNS_PROVIDER=rfc2136 (host:port of the primary)',
    );
    // Unsigned updates are not offered: a server that takes them takes them from anyone.
    needs(
      'rfc2136TsigKey',
      'RFC2136_TSIG_KEY',
      'with DNS_PROVIDER=rfc2136 (the key name the server knows)',
    );
    if (!setVariables.has('rfc2136TsigSecret') && !setVariables.has('rfc2136TsigSecretFile')) {
      needs(
        'rfc2136TsigSecret',
        'RFC2136_TSIG_SECRET',
        'with DNS_PROVIDER=rfc2136 (or RFC2136_TSIG_SECRET_FILE), base64 as tsig-keygen prints it',
      );
    }
  } else if (provider === 'pdns') {
    needs('pdnsApiUrl', 'PDNS_API_URL', 'with DNS_PROVIDER=pdns (such as http://pdns:8081)');
    if (!setVariables.has('pdnsApiKey') && !setVariables.has('pdnsApiKeyFile')) {
      needs('pdnsApiKey', 'PDNS_API_KEY', 'with DNS_PROVIDER=pdns (or PDNS_API_KEY_FILE)');
    }
  } else if (provider === 'exec') {
    needs(
      'execPath',
      'EXEC_PATH',
      'with DNS_PROVIDER=exec (the program run as EXEC_PATH present|cleanup <fqdn> <value>)',
    );
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return values as unknown as Config;
}

/** `http:` to anything but this host (localhost, 127.0.0.0/8, ::1). */
function isPlainHttpOffHost(raw: string): boolean {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return false; // Already reported by the setting's own schema.
  }
  if (url.protocol !== 'http:') return false;
  const host = url.hostname;
  return !(host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host));
}
