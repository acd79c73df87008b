#!/usr/bin/env bash
# Installs lego v5 (the current lego, a peer row of `npm run bench`) from the
# Go module proxy into a cache directory. Skips the build when the binary is
# already there. Prints the bin directory. Needs Go (>= 1.24).
#
# Override the directory with LEGO_GOBIN (scripts/bench.ts reads the same
# variable).
set -euo pipefail

LEGO_VERSION="v5.6.0"
BIN_DIR="${LEGO_GOBIN:-${XDG_CACHE_HOME:-$HOME/.cache}/acme-sidecar/go/lego-v5/bin}"

if [ -x "$BIN_DIR/lego" ]; then
  echo "$BIN_DIR"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
  else
    echo "install-lego.sh: Go (>= 1.24) not found on PATH or at /usr/local/go/bin/go" >&2
    exit 1
  fi
fi

mkdir -p "$BIN_DIR"
echo "install-lego.sh: building lego ${LEGO_VERSION} into $BIN_DIR" >&2
# v5 keeps its main package at the module root (there is no cmd/lego).
if GOBIN="$BIN_DIR" go install "github.com/go-acme/lego/v5@${LEGO_VERSION}" 2>"$BIN_DIR/cli-build.log"; then
  echo "$BIN_DIR"
  exit 0
fi
# The CLI imports every DNS provider, and a module proxy that refuses one of
# their SDKs (this machine's answers 403 for several) cannot build it. The
# same lego release's ACME library and webroot provider need none of them:
# devenv/lego-v5 is a small main over them that takes the CLI's flags for the
# one path the bench uses (its go.mod pins lego ${LEGO_VERSION}).
echo "install-lego.sh: the lego CLI did not build ($(grep -c 403 "$BIN_DIR/cli-build.log") refused downloads, see $BIN_DIR/cli-build.log); building devenv/lego-v5 over lego's library instead" >&2
HERE="$(cd "$(dirname "$0")" && pwd)"
grep -q "github.com/go-acme/lego/v5 ${LEGO_VERSION}" "$HERE/lego-v5/go.mod"
(cd "$HERE/lego-v5" && go build -o "$BIN_DIR/lego" .)
echo "$BIN_DIR"
