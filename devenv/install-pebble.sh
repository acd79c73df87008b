#!/usr/bin/env bash
# Installs Pebble 2.9.0 and pebble-challtestsrv 2.9.0 (the test CA of the
# tests and the devenv) from the Go module proxy into a cache directory, so
# CI and a newcomer run the same thing. Needs Go >= 1.24. Skips the build
# when both binaries are already there. Prints the bin directory.
#
# Override the directory with PEBBLE_GOBIN (devenv reads the same variable).
set -euo pipefail

# PEBBLE_VERSION=v2.10.3 builds the dns-persist-01 Pebble (test/e2e/dns-persist.test.ts).
PEBBLE_VERSION="${PEBBLE_VERSION:-v2.9.0}"
BIN_DIR="${PEBBLE_GOBIN:-${XDG_CACHE_HOME:-$HOME/.cache}/acme-sidecar/go/pebble-${PEBBLE_VERSION}/bin}"

if [ -x "$BIN_DIR/pebble" ] && [ -x "$BIN_DIR/pebble-challtestsrv" ]; then
  echo "$BIN_DIR"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
  else
    echo "install-pebble.sh: Go (>= 1.24) not found on PATH or at /usr/local/go/bin/go;" >&2
    echo "install Go, or run 'npm run demo' with Debian's pebble package instead." >&2
    exit 1
  fi
fi

mkdir -p "$BIN_DIR"
echo "install-pebble.sh: building Pebble ${PEBBLE_VERSION} into $BIN_DIR" >&2
GOBIN="$BIN_DIR" go install \
  "github.com/letsencrypt/pebble/v2/cmd/pebble@${PEBBLE_VERSION}" \
  "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@${PEBBLE_VERSION}"
echo "$BIN_DIR"
