#!/bin/sh
# STAND-IN for the official nginx image's /docker-entrypoint.sh — NOT the
# official image. devenv/images.ts builds a local `nginx:stable` from Debian's
# nginx package (no image registry is reachable in tests or CI) and installs
# this file as its entrypoint. It keeps the contract docker-compose.yml relies
# on:
#   - only when the command is `nginx` or `nginx-debug`, every file in
#     /docker-entrypoint.d/ is considered in `sort -V` order: executable
#     `*.sh` files are run, executable `*.envsh` files are sourced, anything
#     else is skipped with a message;
#   - then the command is exec'd (nginx becomes PID 1).
# 20-envsubst-on-templates.sh (also a stand-in) renders
# /etc/nginx/templates/*.template into /etc/nginx/conf.d/, as the official one.
set -e

log() {
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$0: $*"
}

if [ "${1:-}" = "nginx" ] || [ "${1:-}" = "nginx-debug" ]; then
    scripts=$(find /docker-entrypoint.d/ -mindepth 1 -maxdepth 1 -follow -type f 2>/dev/null | sort -V)
    if [ -n "$scripts" ]; then
        log "/docker-entrypoint.d/ is not empty, will attempt to perform configuration"
        for f in $scripts; do
            case "$f" in
                *.envsh)
                    if [ -x "$f" ]; then log "Sourcing $f"; . "$f"; else log "Ignoring $f, not executable"; fi
                    ;;
                *.sh)
                    if [ -x "$f" ]; then log "Launching $f"; "$f"; else log "Ignoring $f, not executable"; fi
                    ;;
                *) log "Ignoring $f" ;;
            esac
        done
        log "Configuration complete; ready for start up"
    else
        log "No files found in /docker-entrypoint.d/, skipping configuration"
    fi
fi

exec "$@"
