// `npm run demo` (script: "tsx devenv/demo.ts"): start the local ACME
// environment, print how to reach it, and keep it up until Ctrl-C.
import { checkPrereqs, startDevEnv } from './index.js';

const pre = checkPrereqs();
if (!pre.ok) {
  console.error(pre.message);
  process.exit(1);
}

const env = await startDevEnv({ keepTempDir: process.env.DEVENV_KEEP === '1' });
console.log(`acme-sidecar devenv is up (everything on 127.0.0.1):
  staging    ACME directory  ${env.staging.directoryUrl}
             root/intermed.  ${env.staging.managementUrl}/roots/0  /intermediates/0
  production ACME directory  ${env.production.directoryUrl}
             root/intermed.  ${env.production.managementUrl}/roots/0  /intermediates/0
  trust Pebble's API via     ${env.caPemPath}
  DNS (challtestsrv)         ${env.dns.dnsAddress}  management ${env.dns.managementUrl}
  nginx HTTP (HTTP-01)       http://127.0.0.1:${env.ports.http}/.well-known/acme-challenge/
  nginx HTTPS                127.0.0.1:${env.ports.https} (no TLS servers until certificates exist)
  webroot                    ${env.webroot}
  certificates dir           ${env.certDir}/live/<name>/{fullchain,privkey}.pem
  logs                       ${env.dir}/*.log, ${env.nginx.prefixDir}/error.log
Ctrl-C to stop${process.env.DEVENV_KEEP === '1' ? ' (temp dir kept)' : ''}.`);

let stopping = false;
const shutdown = (): void => {
  if (stopping) return;
  stopping = true;
  console.log('\nstopping...');
  env.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
