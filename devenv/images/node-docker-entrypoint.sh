#!/bin/sh
# STAND-IN for the official node image's docker-entrypoint.sh — NOT the
# official image. devenv/images.ts builds a local `node:20-bookworm-slim`
# (Debian bookworm minbase plus this machine's Node 20 and npm) and installs
# this as its entrypoint. Same contract: if the first argument is an option
# (`-e ...`) or not a command on PATH, run it with node.
set -e
if [ "${1#-}" != "${1:-}" ] || [ -z "$(command -v "${1:-}" 2>/dev/null)" ]; then
    set -- node "$@"
fi
exec "$@"
