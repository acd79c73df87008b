# Build stage: compile TypeScript with the dev dependencies.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.ts ./scripts/
COPY src ./src
# dist/src/cli.js: one esbuild bundle with the packages it uses, plus a
# chunk per lazy import() (scripts/build.ts): half the start-up CPU.
RUN npm run build

# Runtime stage: production dependencies and the compiled code only.
FROM node:24-bookworm-slim
LABEL org.opencontainers.image.title="acme-sidecar" \
      org.opencontainers.image.description="Certificates from an ACME CA for the nginx beside it: HTTP-01 through a shared webroot." \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/acme-sidecar/acme-sidecar"
# MALLOC_ARENA_MAX=2: glibc gives each thread that mallocs (libuv's pool
# reading files and parsing certificates, V8's helpers) an arena of its
# own; two arenas keep that memory in fewer, reused places (the daemon idle
# with 1000 certificates: docs/performance.md, the memory section).
# MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ fixed at 128 KiB: glibc
# otherwise raises both after a large buffer is freed (up to 32 and 64 MB),
# and then keeps what a pass freed instead of handing it back (settled RSS
# with 1000 certificates 143 -> 133 MB, peak 178 -> 155 MB).
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=131072 \
    MALLOC_TRIM_THRESHOLD_=131072 \
    WEBROOT=/var/www \
    STATE_DIR=/etc/letsencrypt
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
# The volumes are created owned by the unprivileged `node` user, so a fresh
# named volume inherits that ownership and the sidecar never needs root.
# /var/lib/acme-sidecar/served: LIVE_DIR in docker-compose.yml (live/ and
# archive/ only, the one volume of certificates nginx mounts).
RUN mkdir -p /var/www/.well-known/acme-challenge /etc/letsencrypt /var/lib/acme-sidecar/served \
 && chown -R node:node /var/www /etc/letsencrypt /var/lib/acme-sidecar \
 && chmod 0755 /var/www /var/www/.well-known /var/www/.well-known/acme-challenge
USER node
# The status server (STATUS_ADDRESS) listens on 127.0.0.1:8080 by default:
# set STATUS_ADDRESS=0.0.0.0:8080 to scrape /metrics from outside
# (docs/operations.md).
EXPOSE 8080
# /healthz of the status server, asked from inside the container. The
# probe starts a Node process that loads the CLI's first chunk only (0.13 s
# on a quiet 2-core machine, `npm run bench`; seconds when it is busy),
# hence 10 s, not 5.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD ["node", "/app/dist/src/cli.js", "healthcheck"]
VOLUME ["/var/www", "/etc/letsencrypt"]
# Node flags (docs/performance.md, the memory section):
# - --jitless: V8's interpreter only, no compiled code. The sidecar waits on
#   the CA and the disk, not on JavaScript: with it, `once` for 100
#   certificates (staging then production) peaks at 79 MB instead of 128 MB,
#   the daemon with 1000 certificates settles at 107 MB instead of 137 MB,
#   and the bench's wall times for 50 and 100 orders stay the same (4.3 and
#   8.3 s; a pass's CPU 1.5 -> 1.6 s). It also turns off WebAssembly:
#   nothing here needs it (no `fetch`, whose undici parser is WebAssembly;
#   protobufjs' int64 helper `long`, under etcd3, falls back to JavaScript).
#   test/e2e/startup.test.ts and etcd-store.test.ts run with these flags.
# - a 1 MB young generation instead of 16 MB;
# - gc exposed, so that the daemon collects a pass's garbage once it is idle
#   (src/app/idle-gc.ts).
# The benches (scripts/image-node-args.ts) run the sidecar with these flags.
ENTRYPOINT ["node", "--jitless", "--max-semi-space-size=1", "--expose-gc", "/app/dist/src/cli.js"]
CMD ["run"]
