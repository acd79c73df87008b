import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { loadConfig } from '../../src/config/load.js';
import { SETTINGS, type Config } from '../../src/config/schema.js';
import { ConfigError } from '../../src/domain/errors.js';

type Env = Record<string, string | undefined>;

const KEY_PEM =
  '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n';

/** Writes `content` to `dir/name` and returns the path. */
function fileIn(dir: string, name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const PEM = [
  '-----BEGIN CERTIFICATE-----',
  'MIIBszCCAVmgAwIBAgIUZmFrZWZha2VmYWtlZmFrZWZha2UwCgYIKoZIzj0EAwIw',
  '-----END CERTIFICATE-----',
  '',
].join('\n');

/** loadConfig with a fixed random source, so the schedule default is known. */
const load = (env: Env): Config => loadConfig(env, { random: () => 0.5 });

function configError(env: Env): ConfigError {
  try {
    load(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${JSON.stringify(env)} to be refused`);
}

const DEFAULTS: Config = {
  domains: '',
  allowedDomains: [],
  platform: 'static',
  staging: true,
  webroot: '/var/www',
  stateDir: '/etc/letsencrypt',
  liveDir: '/etc/letsencrypt',
  keyType: 'ecdsa-p384',
  loopTimeSeconds: 300,
  checkSchedule: '30 12 * * *',
  stagingDirectoryUrl: 'https://acme-staging-v02.api.letsencrypt.org/directory',
  productionDirectoryUrl: 'https://acme-v02.api.letsencrypt.org/directory',
  acmeTimeoutMs: 30000,
  cattleTimeoutMs: 10000,
  dockerSocket: '/var/run/docker.sock',
  dockerTimeoutMs: 10000,
  dockerEnvHostnames: [],
  dockerStoppedGraceMs: 168 * 3600_000,
  dockerReloadLabel: 'io.acme-sidecar.reload=true',
  dockerReloadSignal: 'HUP',
  statusAddress: { host: '127.0.0.1', port: 8080 },
  renewCooldownSeconds: 600,
  maxConcurrentOrders: 8,
  hookWebhookProxy: false,
  cattleAllowInsecure: false,
  rateLimits: 'auto',
  ari: 'auto',
  selfCheck: true,
  logLevel: 'info',
  logFormat: 'json',
  clusterName: 'default',
  clusterLeaseTtlSeconds: 15,
  acmeChallenge: 'http-01',
  rfc2136TsigAlgorithm: 'hmac-sha256.',
  pdnsServerId: 'localhost',
  execTimeoutMs: 60_000,
  dnsPropagationTimeoutMs: 120_000,
  dnsAuthoritativePort: 53,
  dnsPollingIntervalMs: 2000,
};

describe('loadConfig', () => {
  let dir: string;
  let bundle: string;
  let notPem: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'config-test-'));
    bundle = join(dir, 'ca.pem');
    writeFileSync(bundle, PEM);
    notPem = join(dir, 'not.pem');
    writeFileSync(notPem, 'just text\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('uses the defaults for an empty environment', () => {
    assert.deepEqual(load({}), DEFAULTS);
  });

  it('treats empty and blank values as unset', () => {
    assert.deepEqual(load({ STAGING: '', LOG_LEVEL: '   ', ACME_EMAIL: '' }), DEFAULTS);
  });

  it('parses every variable', () => {
    const env: Env = {
      DOMAINS: 'a.example.com,shop=b.example.com+c.example.com',
      ALLOWED_DOMAINS: ' Example.COM. ,example.com',
      DOMAINS_FILE: '/etc/acme/domains.txt',
      PLATFORM: 'Rancher',
      CATTLE_URL: 'https://rancher.example.com:8443/v1',
      CATTLE_ALLOW_INSECURE: 'false',
      CATTLE_ACCESS_KEY: 'AK123',
      CATTLE_SECRET_KEY: 'sekrit',
      CATTLE_CA_BUNDLE: bundle,
      CATTLE_CERT_SHA256: 'AB:'.repeat(31) + 'AB',
      CATTLE_TIMEOUT_SECONDS: '3',
      DOCKER_HOST: 'unix:///run/user/1000/docker.sock',
      DOCKER_TIMEOUT_SECONDS: '2',
      DOCKER_ENV_HOSTNAMES: 'LETSENCRYPT_HOST, VIRTUAL_HOST',
      DOCKER_STOPPED_GRACE_HOURS: '0.5',
      DOCKER_RELOAD_LABEL: 'com.example.role=proxy',
      DOCKER_RELOAD_SIGNAL: 'sigusr2',
      STATUS_ADDRESS: '[::1]:9090',
      RENEW_COOLDOWN: '60',
      MAX_CONCURRENT_ORDERS: '16',
      RATE_LIMITS: 'Production',
      ACME_ARI: 'OFF',
      HOOK_COMMAND: 'nginx -s reload',
      HOOK_WEBHOOK_URL: 'https://hooks.example.com/acme?token=x',
      HOOK_WEBHOOK_PROXY: 'yes',
      COMBINED_PEM_DIR: '/etc/haproxy/certs/',
      DEPLOY_CHECK_ENDPOINTS: 'nginx:443, [::1]:8443',
      STAGING: 'false',
      ACME_EMAIL: 'admin@example.com',
      WEBROOT: '/srv/www/',
      STATE_DIR: '/data/acme',
      LIVE_DIR: '/data/served/',
      KEY_TYPE: 'rsa-2048',
      RENEW_BEFORE_DAYS: '0.5',
      LOOP_TIME: '0',
      CHECK_SCHEDULE: ' 17  3 * * mon ',
      ACME_STAGING_DIRECTORY_URL: 'https://localhost:14000/dir',
      ACME_PRODUCTION_DIRECTORY_URL: 'http://127.0.0.1:14000/dir',
      ACME_PROFILE: 'tlsserver',
      ACME_CA_BUNDLE: bundle,
      ACME_TIMEOUT_SECONDS: '2.5',
      EAB_KID: 'kid-1',
      EAB_HMAC_KEY: 'c2VjcmV0LWhtYWMta2V5',
      SELF_CHECK: 'no',
      SELF_CHECK_ADDRESS: '[fd00::5]:8080',
      LOG_LEVEL: 'DEBUG',
      LOG_FORMAT: 'text',
      CLUSTER_ETCD_ENDPOINTS: 'https://etcd-1:2379, https://[fd00::1]:2379',
      CLUSTER_NAME: 'edge-eu',
      CLUSTER_NODE_NAME: 'lb-1',
      CLUSTER_ENCRYPTION_KEY_FILE: fileIn(dir, 'cluster.key', `${'A'.repeat(43)}=\n`),
      CLUSTER_LEASE_TTL: '30',
      CLUSTER_ETCD_CA_FILE: bundle,
      CLUSTER_ETCD_CERT_FILE: bundle,
      CLUSTER_ETCD_KEY_FILE: fileIn(dir, 'etcd-client.key', KEY_PEM),
      CLUSTER_ETCD_USERNAME: 'sidecar',
      CLUSTER_ETCD_PASSWORD_FILE: fileIn(dir, 'etcd.password', 'pw\n'),
      ACME_CHALLENGE: 'DNS-01',
      DNS_PROVIDER: 'rfc2136',
      RFC2136_NAMESERVER: 'ns1.example.com',
      RFC2136_TSIG_KEY: 'acme-key.',
      RFC2136_TSIG_SECRET: 'c2VjcmV0',
      RFC2136_TSIG_SECRET_FILE: fileIn(dir, 'tsig.secret', 'c2VjcmV0\n'),
      RFC2136_TSIG_ALGORITHM: 'HMAC-SHA512',
      PDNS_API_URL: 'http://pdns:8081',
      PDNS_API_KEY: 'pdns-key',
      PDNS_API_KEY_FILE: fileIn(dir, 'pdns.key', 'pdns-key\n'),
      PDNS_SERVER_ID: 'ns1',
      EXEC_PATH: '/usr/local/bin/dns-hook',
      EXEC_TIMEOUT: '5',
      DNS_RESOLVERS: '10.0.0.53:53, [fd00::53]:5353',
      DNS_BOOTSTRAP_RESOLVERS: '10.0.0.2:53',
      DNS_AUTHORITATIVE_PORT: '5353',
      DNS_PROPAGATION_TIMEOUT: '30',
      DNS_POLLING_INTERVAL: '0.5',
    };
    const expected: Config = {
      domains: 'a.example.com,shop=b.example.com+c.example.com',
      domainsFile: '/etc/acme/domains.txt',
      allowedDomains: ['example.com'],
      platform: 'rancher',
      cattleUrl: 'https://rancher.example.com:8443/v1',
      cattleAccessKey: 'AK123',
      cattleSecretKey: 'sekrit',
      cattleCaBundle: bundle,
      cattleCertSha256: 'ab'.repeat(32),
      cattleTimeoutMs: 3000,
      dockerSocket: '/run/user/1000/docker.sock',
      dockerTimeoutMs: 2000,
      dockerEnvHostnames: ['LETSENCRYPT_HOST', 'VIRTUAL_HOST'],
      dockerStoppedGraceMs: 1800_000,
      dockerReloadLabel: 'com.example.role=proxy',
      dockerReloadSignal: 'USR2',
      statusAddress: { host: '::1', port: 9090 },
      renewCooldownSeconds: 60,
      maxConcurrentOrders: 16,
      rateLimits: 'production',
      ari: 'off',
      hookCommand: 'nginx -s reload',
      hookWebhookUrl: 'https://hooks.example.com/acme?token=x',
      hookWebhookProxy: true,
      cattleAllowInsecure: false,
      combinedPemDir: '/etc/haproxy/certs',
      deployCheckEndpoints: [
        { host: 'nginx', port: 443 },
        { host: '::1', port: 8443 },
      ],
      staging: false,
      acmeEmail: 'admin@example.com',
      webroot: '/srv/www',
      stateDir: '/data/acme',
      liveDir: '/data/served',
      keyType: 'rsa-2048',
      renewBeforeDays: 0.5,
      loopTimeSeconds: 0,
      checkSchedule: '17 3 * * mon',
      stagingDirectoryUrl: 'https://localhost:14000/dir',
      productionDirectoryUrl: 'http://127.0.0.1:14000/dir',
      acmeProfile: 'tlsserver',
      acmeCaBundle: bundle,
      acmeTimeoutMs: 2500,
      eabKid: 'kid-1',
      eabHmacKey: 'c2VjcmV0LWhtYWMta2V5',
      selfCheck: false,
      selfCheckAddress: '[fd00::5]:8080',
      logLevel: 'debug',
      logFormat: 'text',
      clusterEtcdEndpoints: ['https://etcd-1:2379', 'https://[fd00::1]:2379'],
      clusterName: 'edge-eu',
      clusterNodeName: 'lb-1',
      clusterEncryptionKeyFile: join(dir, 'cluster.key'),
      clusterLeaseTtlSeconds: 30,
      clusterEtcdCaFile: bundle,
      clusterEtcdCertFile: bundle,
      clusterEtcdKeyFile: join(dir, 'etcd-client.key'),
      clusterEtcdUsername: 'sidecar',
      clusterEtcdPasswordFile: join(dir, 'etcd.password'),
      acmeChallenge: 'dns-01',
      dnsProvider: 'rfc2136',
      rfc2136Nameserver: 'ns1.example.com:53',
      rfc2136TsigKey: 'acme-key.',
      rfc2136TsigSecret: 'c2VjcmV0',
      rfc2136TsigSecretFile: join(dir, 'tsig.secret'),
      rfc2136TsigAlgorithm: 'hmac-sha512.',
      pdnsApiUrl: 'http://pdns:8081',
      pdnsApiKey: 'pdns-key',
      pdnsApiKeyFile: join(dir, 'pdns.key'),
      pdnsServerId: 'ns1',
      execPath: '/usr/local/bin/dns-hook',
      execTimeoutMs: 5000,
      dnsResolvers: ['10.0.0.53:53', '[fd00::53]:5353'],
      dnsBootstrapResolvers: ['10.0.0.2:53'],
      dnsAuthoritativePort: 5353,
      dnsPropagationTimeoutMs: 30_000,
      dnsPollingIntervalMs: 500,
    };
    assert.deepEqual(load(env), expected);
    const everyVariable = SETTINGS.map((s) => s.env).sort();
    assert.deepEqual(Object.keys(env).sort(), everyVariable, 'this test should set every variable');
  });

  it('leaves a tcp:// DOCKER_HOST (meant for the docker CLI) alone unless PLATFORM=docker', () => {
    assert.equal(load({ DOCKER_HOST: 'tcp://docker:2375' }).dockerSocket, 'tcp://docker:2375');
  });

  it('keeps live/ and archive/ in STATE_DIR unless LIVE_DIR is set', () => {
    assert.equal(load({ STATE_DIR: '/data/acme' }).liveDir, '/data/acme');
    assert.equal(load({ STATE_DIR: '/data/acme', LIVE_DIR: '/srv/served' }).liveDir, '/srv/served');
  });

  it('turns the status server off with STATUS_ADDRESS=off', () => {
    assert.equal(load({ STATUS_ADDRESS: 'OFF' }).statusAddress, 'off');
  });

  it('with PLATFORM=rancher, names each missing Cattle variable', () => {
    const err = configError({ PLATFORM: 'rancher', CATTLE_URL: 'https://rancher:8443/v1' });
    assert.deepEqual(
      err.problems.map((p) => p.variable),
      ['CATTLE_ACCESS_KEY', 'CATTLE_SECRET_KEY'],
    );
    assert.match(err.message, /CATTLE_SECRET_KEY=.*expected to be set with PLATFORM=rancher/);
  });

  describe('a plain-http CATTLE_URL (it carries the API secret and the private keys)', () => {
    const rancher = { PLATFORM: 'rancher', CATTLE_ACCESS_KEY: 'ak', CATTLE_SECRET_KEY: 'sk' };
    const refused = [
      'http://rancher:8080/v1',
      'http://10.0.0.5:8080/v1',
      'http://127.example.com/v1',
      'http://[fd00::5]:8080/v1',
    ];
    for (const url of refused) {
      it(`refuses ${url} at startup, naming the variable, the value and CATTLE_ALLOW_INSECURE`, () => {
        const err = configError({ ...rancher, CATTLE_URL: url });
        assert.deepEqual(
          err.problems.map((p) => [p.variable, p.value]),
          [['CATTLE_URL', url]],
        );
        assert.match(err.message, /expected an https:\/\/ URL/);
        assert.match(err.message, /CATTLE_ALLOW_INSECURE=true/);
      });
    }
    const accepted = [
      'https://rancher:8443/v1',
      'http://127.0.0.1:8080/v1',
      'http://127.1.2.3:8080/v1',
      'http://localhost:8080/v1',
      'http://[::1]:8080/v1',
    ];
    for (const url of accepted) {
      it(`accepts ${url}`, () => {
        assert.equal(load({ ...rancher, CATTLE_URL: url }).cattleUrl, url);
      });
    }
    it('accepts a remote http:// URL with CATTLE_ALLOW_INSECURE=true', () => {
      const c = load({
        ...rancher,
        CATTLE_URL: 'http://rancher:8080/v1',
        CATTLE_ALLOW_INSECURE: 'true',
      });
      assert.equal(c.cattleUrl, 'http://rancher:8080/v1');
    });
    it('leaves CATTLE_URL alone when the platform is not rancher (Rancher injects it anyway)', () => {
      assert.equal(
        load({ CATTLE_URL: 'http://rancher:8080/v1' }).cattleUrl,
        'http://rancher:8080/v1',
      );
    });
  });

  describe('boolean values', () => {
    const cases: [string, boolean][] = [
      ['true', true],
      ['True', true],
      ['TRUE', true],
      ['1', true],
      ['yes', true],
      ['false', false],
      ['False', false],
      ['FALSE', false],
      ['0', false],
      ['no', false],
    ];
    for (const [value, expected] of cases) {
      it(`reads STAGING=${value} as ${expected}`, () => {
        assert.equal(load({ STAGING: value }).staging, expected);
      });
    }
  });

  describe('aliases', () => {
    it('reads ACME_EMAIL from CERTBOT_EMAIL', () => {
      assert.equal(load({ CERTBOT_EMAIL: 'a@example.com' }).acmeEmail, 'a@example.com');
    });
    it('reads ACME_EMAIL from LETSENCRYPT_EMAIL', () => {
      assert.equal(load({ LETSENCRYPT_EMAIL: 'b@example.com' }).acmeEmail, 'b@example.com');
    });
    it('reads WEBROOT from CERTBOT_WEBROOT', () => {
      assert.equal(load({ CERTBOT_WEBROOT: '/webroot' }).webroot, '/webroot');
    });
    it('prefers the main name over an alias', () => {
      const env = { ACME_EMAIL: 'main@example.com', CERTBOT_EMAIL: 'alias@example.com' };
      assert.equal(load(env).acmeEmail, 'main@example.com');
    });
    it('prefers the first alias over the second', () => {
      const env = { CERTBOT_EMAIL: 'first@example.com', LETSENCRYPT_EMAIL: 'second@example.com' };
      assert.equal(load(env).acmeEmail, 'first@example.com');
    });
    it('falls through an empty main name to the alias', () => {
      assert.equal(
        load({ ACME_EMAIL: '', CERTBOT_EMAIL: 'c@example.com' }).acmeEmail,
        'c@example.com',
      );
    });
    it('names the alias that was used when its value is bad', () => {
      const err = configError({ CERTBOT_EMAIL: 'nope' });
      assert.deepEqual(
        err.problems.map((p) => p.variable),
        ['CERTBOT_EMAIL'],
      );
    });
  });

  describe('the check schedule default', () => {
    it('is daily at a minute and hour drawn from the random source', () => {
      assert.equal(loadConfig({}, { random: () => 0 }).checkSchedule, '0 0 * * *');
      assert.equal(loadConfig({}, { random: () => 0.999999 }).checkSchedule, '59 23 * * *');
    });
    it('stays in range even if the random source returns 1', () => {
      assert.equal(loadConfig({}, { random: () => 1 }).checkSchedule, '59 23 * * *');
    });
    it('uses Math.random when no source is given', () => {
      assert.match(
        loadConfig({}).checkSchedule,
        /^([0-9]|[1-5][0-9]) ([0-9]|1[0-9]|2[0-3]) \* \* \*$/,
      );
    });
  });

  describe('the CA bundle', () => {
    it('reads the file through the injected reader', () => {
      const read: string[] = [];
      const readFile = (path: string): string => {
        read.push(path);
        return PEM;
      };
      assert.equal(loadConfig({ ACME_CA_BUNDLE: '/ca.pem' }, { readFile }).acmeCaBundle, '/ca.pem');
      assert.deepEqual(read, ['/ca.pem']);
    });
  });

  const badValues: { name: string; env: Env; variable: string; expected: string }[] = [
    {
      name: 'refuses a STAGING value that is not a boolean word',
      env: { STAGING: 'maybe' },
      variable: 'STAGING',
      expected: 'expected one of true, false, 1, 0',
    },
    {
      name: 'refuses a SELF_CHECK value that is not a boolean word',
      env: { SELF_CHECK: 'on' },
      variable: 'SELF_CHECK',
      expected: 'expected one of true, false, 1, 0',
    },
    {
      name: 'refuses an email address without a domain',
      env: { ACME_EMAIL: 'admin' },
      variable: 'ACME_EMAIL',
      expected: 'expected an email address',
    },
    {
      name: 'refuses a relative WEBROOT',
      env: { WEBROOT: 'www' },
      variable: 'WEBROOT',
      expected: 'expected an absolute path',
    },
    {
      name: 'refuses a relative STATE_DIR',
      env: { STATE_DIR: './state' },
      variable: 'STATE_DIR',
      expected: 'expected an absolute path',
    },
    {
      name: 'refuses a relative LIVE_DIR',
      env: { LIVE_DIR: 'served' },
      variable: 'LIVE_DIR',
      expected: 'expected an absolute path',
    },
    {
      name: 'refuses an unknown KEY_TYPE and lists the valid ones',
      env: { KEY_TYPE: 'rsa-1024' },
      variable: 'KEY_TYPE',
      expected: 'expected one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096',
    },
    {
      name: 'refuses an ACME_PROFILE that is not a profile name',
      env: { ACME_PROFILE: 'short lived/../x' },
      variable: 'ACME_PROFILE',
      expected: 'expected a profile name of 1 to 64 letters',
    },
    {
      name: 'refuses an ACME_PROFILE longer than 64 characters',
      env: { ACME_PROFILE: 'a'.repeat(65) },
      variable: 'ACME_PROFILE',
      expected: 'expected a profile name of 1 to 64 letters',
    },
    {
      name: 'refuses a RENEW_BEFORE_DAYS of zero',
      env: { RENEW_BEFORE_DAYS: '0' },
      variable: 'RENEW_BEFORE_DAYS',
      expected: 'expected a positive number of days',
    },
    {
      name: 'refuses a RENEW_BEFORE_DAYS that is not a number',
      env: { RENEW_BEFORE_DAYS: '30d' },
      variable: 'RENEW_BEFORE_DAYS',
      expected: 'expected a positive number of days',
    },
    {
      name: 'refuses a negative LOOP_TIME',
      env: { LOOP_TIME: '-1' },
      variable: 'LOOP_TIME',
      expected: 'expected a whole number of seconds from 0 to 86400',
    },
    {
      name: 'refuses a fractional LOOP_TIME',
      env: { LOOP_TIME: '1.5' },
      variable: 'LOOP_TIME',
      expected: 'expected a whole number of seconds',
    },
    {
      name: 'refuses MAX_CONCURRENT_ORDERS of 0',
      env: { MAX_CONCURRENT_ORDERS: '0' },
      variable: 'MAX_CONCURRENT_ORDERS',
      expected: 'expected a whole number from 1 to 64',
    },
    {
      name: 'refuses MAX_CONCURRENT_ORDERS above 64',
      env: { MAX_CONCURRENT_ORDERS: '100' },
      variable: 'MAX_CONCURRENT_ORDERS',
      expected: 'expected a whole number from 1 to 64',
    },
    {
      name: 'refuses a cron expression with a seconds field',
      env: { CHECK_SCHEDULE: '0 0 3 * * *' },
      variable: 'CHECK_SCHEDULE',
      expected: 'expected a 5-field cron expression',
    },
    {
      name: 'refuses a cron expression with an out-of-range minute',
      env: { CHECK_SCHEDULE: '61 3 * * *' },
      variable: 'CHECK_SCHEDULE',
      expected: 'expected a 5-field cron expression',
    },
    {
      name: 'refuses a plain-http staging directory on a public host',
      env: { ACME_STAGING_DIRECTORY_URL: 'http://acme.example.com/directory' },
      variable: 'ACME_STAGING_DIRECTORY_URL',
      expected: 'expected an https:// URL (http:// only for localhost, 127.0.0.1 or [::1])',
    },
    {
      name: 'refuses a production directory that is not a URL',
      env: { ACME_PRODUCTION_DIRECTORY_URL: 'acme-v02.api.letsencrypt.org' },
      variable: 'ACME_PRODUCTION_DIRECTORY_URL',
      expected: 'expected an https:// URL',
    },
    {
      name: 'refuses a CA bundle that does not exist',
      env: { ACME_CA_BUNDLE: '/nonexistent/ca.pem' },
      variable: 'ACME_CA_BUNDLE',
      expected:
        'expected a readable PEM file containing a CERTIFICATE block (could not read it: ENOENT)',
    },
    {
      name: 'refuses a SELF_CHECK_ADDRESS without a port',
      env: { SELF_CHECK_ADDRESS: 'nginx' },
      variable: 'SELF_CHECK_ADDRESS',
      expected: 'expected host:port',
    },
    {
      name: 'refuses a SELF_CHECK_ADDRESS with port 0',
      env: { SELF_CHECK_ADDRESS: 'nginx:0' },
      variable: 'SELF_CHECK_ADDRESS',
      expected: 'port 1-65535',
    },
    {
      name: 'refuses an unbracketed IPv6 SELF_CHECK_ADDRESS',
      env: { SELF_CHECK_ADDRESS: 'fd00::5:80' },
      variable: 'SELF_CHECK_ADDRESS',
      expected: 'expected host:port',
    },
    {
      name: 'refuses a zero ACME timeout',
      env: { ACME_TIMEOUT_SECONDS: '0' },
      variable: 'ACME_TIMEOUT_SECONDS',
      expected: 'expected a positive number of seconds',
    },
    {
      name: 'refuses an unknown LOG_LEVEL and lists the valid ones',
      env: { LOG_LEVEL: 'verbose' },
      variable: 'LOG_LEVEL',
      expected: 'expected one of error, warn, info, debug',
    },
    {
      name: 'refuses an unknown LOG_FORMAT and lists the valid ones',
      env: { LOG_FORMAT: 'xml' },
      variable: 'LOG_FORMAT',
      expected: 'expected one of json, text',
    },
    {
      name: 'refuses a platform that does not exist',
      env: { PLATFORM: 'kubernetes' },
      variable: 'PLATFORM',
      expected: 'expected one of static, rancher',
    },
    {
      name: 'refuses a status address without a port',
      env: { STATUS_ADDRESS: '127.0.0.1' },
      variable: 'STATUS_ADDRESS',
      expected: 'expected host:port such as 0.0.0.0:8080 or 127.0.0.1:9090, or off',
    },
    {
      name: 'refuses a pinned fingerprint that is not SHA-256',
      env: { CATTLE_CERT_SHA256: 'abc123' },
      variable: 'CATTLE_CERT_SHA256',
      expected: 'expected a SHA-256 fingerprint: 64 hex digits, colons allowed',
    },
    {
      name: 'refuses a DOCKER_HOST over TCP with PLATFORM=docker',
      env: { DOCKER_HOST: 'tcp://127.0.0.1:2375', PLATFORM: 'docker' },
      variable: 'DOCKER_HOST',
      expected: 'expected unix:// and an absolute socket path',
    },
    {
      name: 'refuses a relative unix:// DOCKER_HOST',
      env: { DOCKER_HOST: 'unix://docker.sock' },
      variable: 'DOCKER_HOST',
      expected: 'expected unix:// and an absolute socket path',
    },
    {
      name: 'refuses a DOCKER_HOST socket path longer than a UNIX socket allows',
      env: { DOCKER_HOST: `unix:///${'d'.repeat(120)}/docker.sock` },
      variable: 'DOCKER_HOST',
      expected: 'expected unix:// and an absolute socket path',
    },
    {
      name: 'refuses DOCKER_ENV_HOSTNAMES that are not variable names',
      env: { DOCKER_ENV_HOSTNAMES: 'LETSENCRYPT_HOST,VIRTUAL-HOST' },
      variable: 'DOCKER_ENV_HOSTNAMES',
      expected: 'expected comma-separated environment variable names',
    },
    {
      name: 'refuses a negative DOCKER_STOPPED_GRACE_HOURS',
      env: { DOCKER_STOPPED_GRACE_HOURS: '-1' },
      variable: 'DOCKER_STOPPED_GRACE_HOURS',
      expected: 'expected a number of hours from 0 to 87600',
    },
    {
      name: 'refuses a DOCKER_RELOAD_LABEL with a space in its key',
      env: { DOCKER_RELOAD_LABEL: 'my label=x' },
      variable: 'DOCKER_RELOAD_LABEL',
      expected: 'expected a label as key or key=value',
    },
    {
      name: 'refuses a DOCKER_RELOAD_SIGNAL that would stop the server',
      env: { DOCKER_RELOAD_SIGNAL: 'KILL' },
      variable: 'DOCKER_RELOAD_SIGNAL',
      expected: 'expected one of HUP, USR1, USR2',
    },
    {
      name: 'refuses a CATTLE_URL that is not http(s)',
      env: { CATTLE_URL: 'ftp://rancher/v1' },
      variable: 'CATTLE_URL',
      expected: 'expected an http:// or https:// URL such as http://rancher-server:8080/v1',
    },
  ];

  describe('bad values', () => {
    for (const c of badValues) {
      it(c.name, () => {
        const err = configError(c.env);
        const value = Object.values(c.env)[0] ?? '';
        assert.deepEqual(
          err.problems.map((p) => [p.variable, p.value]),
          [[c.variable, value]],
        );
        const line = err.message.split('\n').find((l) => l.includes(`${c.variable}=`)) ?? '';
        assert.ok(
          line.startsWith(`  ${c.variable}=${JSON.stringify(value)}: expected`) &&
            line.includes(c.expected),
          `message lacks variable, value or "${c.expected}":\n${err.message}`,
        );
        assert.equal(err.code, 'CONFIG_INVALID');
      });
    }

    it('refuses a CA bundle without a CERTIFICATE block', () => {
      const err = configError({ ACME_CA_BUNDLE: notPem });
      assert.match(
        err.message,
        /ACME_CA_BUNDLE=".*not\.pem": expected a PEM file containing a CERTIFICATE block/,
      );
    });

    it('reports every bad value at once', () => {
      const err = configError({
        STAGING: 'maybe',
        LOG_LEVEL: 'loud',
        LOOP_TIME: 'soon',
        WEBROOT: 'relative',
      });
      assert.deepEqual(err.problems.map((p) => p.variable).sort(), [
        'LOG_LEVEL',
        'LOOP_TIME',
        'STAGING',
        'WEBROOT',
      ]);
      for (const v of [
        'STAGING="maybe"',
        'LOG_LEVEL="loud"',
        'LOOP_TIME="soon"',
        'WEBROOT="relative"',
      ]) {
        assert.ok(err.message.includes(v), `message lacks ${v}:\n${err.message}`);
      }
    });

    it('shows the value as given, surrounding blanks included', () => {
      const err = configError({ KEY_TYPE: ' rsa ' });
      assert.equal(err.problems[0]?.value, ' rsa ');
    });
  });

  describe('ALLOWED_DOMAINS', () => {
    it('stops startup for a DOMAINS entry outside it, naming the entry and ALLOWED_DOMAINS', () => {
      const err = configError({
        DOMAINS: 'shop.example.com,evil=pay.example.org+www.example.com,badexample.com',
        ALLOWED_DOMAINS: 'example.com',
      });
      assert.deepEqual(
        err.problems.map((p) => [p.variable, p.value]),
        [
          ['DOMAINS', 'evil=pay.example.org+www.example.com'],
          ['DOMAINS', 'badexample.com'],
        ],
      );
      assert.match(
        err.message,
        /DOMAINS="evil=pay.example.org\+www.example.com": expected hostnames under ALLOWED_DOMAINS="example.com", but pay.example.org is outside it/,
      );
    });

    it('accepts DOMAINS entries under it, and any DOMAINS when it is empty', () => {
      const c = loadConfig({
        DOMAINS: 'example.com,a.b.example.com.',
        ALLOWED_DOMAINS: 'EXAMPLE.com',
      });
      assert.deepEqual(c.allowedDomains, ['example.com']);
      assert.deepEqual(loadConfig({ DOMAINS: 'a.example.org' }).allowedDomains, []);
    });

    it('refuses an entry that is not a domain name', () => {
      const err = configError({ ALLOWED_DOMAINS: 'example.com,*.example.org' });
      assert.equal(err.problems[0]?.variable, 'ALLOWED_DOMAINS');
      assert.match(err.message, /no wildcards/);
    });
  });

  describe('External Account Binding', () => {
    const SECRET = 'not base64 because of spaces!';

    it('redacts a bad secret value', () => {
      const err = configError({ EAB_KID: 'kid', EAB_HMAC_KEY: SECRET });
      assert.deepEqual(
        err.problems.map((p) => [p.variable, p.value]),
        [['EAB_HMAC_KEY', '***']],
      );
      assert.match(err.message, /EAB_HMAC_KEY="\*\*\*": expected the base64url-encoded HMAC key/);
      assert.ok(!err.message.includes('spaces'), 'the secret leaked into the message');
      assert.ok(
        !JSON.stringify(err.problems).includes('spaces'),
        'the secret leaked into problems',
      );
    });

    it('does not show a good secret when other values are bad', () => {
      const secret = 'c2VjcmV0LWhtYWMta2V5';
      const err = configError({ EAB_HMAC_KEY: secret, STAGING: 'maybe' });
      assert.ok(!err.message.includes(secret), err.message);
      assert.ok(!JSON.stringify(err.problems).includes(secret));
    });

    it('marks EAB_HMAC_KEY as secret and EAB_KID as not', () => {
      const secret = (env: string): boolean | undefined =>
        SETTINGS.find((s) => s.env === env)?.secret;
      assert.equal(secret('EAB_HMAC_KEY'), true);
      assert.notEqual(secret('EAB_KID'), true);
    });

    it('refuses a key id without an HMAC key', () => {
      const err = configError({ EAB_KID: 'kid' });
      assert.deepEqual(err.problems, [
        {
          variable: 'EAB_HMAC_KEY',
          value: undefined,
          expected: 'expected to be set together with EAB_KID',
        },
      ]);
    });

    it('refuses an HMAC key without a key id, without showing the key', () => {
      const err = configError({ EAB_HMAC_KEY: 'c2VjcmV0' });
      assert.deepEqual(
        err.problems.map((p) => p.variable),
        ['EAB_KID'],
      );
      assert.ok(!err.message.includes('c2VjcmV0'));
    });
  });
});

describe('SETTINGS', () => {
  it('describes every variable once, with no name used twice', () => {
    const names = SETTINGS.flatMap((s) => [s.env, ...(s.aliases ?? [])]);
    assert.equal(new Set(names).size, names.length, names.join(', '));
    assert.equal(new Set(SETTINGS.map((s) => s.key)).size, SETTINGS.length);
  });

  it('gives every setting a description ending in a full stop', () => {
    for (const s of SETTINGS) assert.match(s.description, /\.$/, s.env);
  });
});
