#!/bin/sh
# Runs in the stock nginx image before nginx starts (/docker-entrypoint.d/).
# 1. Waits up to ACME_WAIT_SECONDS for the sidecar's first certificates
#    (self-signed placeholders are written at once) so nginx starts with its
#    TLS servers; 0 starts at once with HTTP only (docker-compose.yml: nginx
#    first, so the sidecar's first challenges are served), and step 3 adds
#    the TLS servers when certificates appear.
# 2. Renders one TLS server per certificate in $CERT_DIR/live/ from
#    tls-server.conf.template, with the certificate's name as server_name.
# 3. Leaves a watcher running that reloads nginx when live/ changes: the
#    sidecar swaps the live/<name> links atomically on every new certificate.
set -eu
CERT_DIR=${CERT_DIR:-/etc/letsencrypt}
TEMPLATE=${ACME_TLS_TEMPLATE:-/etc/acme-sidecar/tls-server.conf.template}
OUT=${ACME_TLS_CONF_DIR:-/etc/nginx/conf.d}
WAIT=${ACME_WAIT_SECONDS:-120}
INTERVAL=${ACME_RELOAD_INTERVAL:-10}

render() {
  rm -f "$OUT"/acme-tls-*.conf
  for dir in "$CERT_DIR"/live/*/; do
    [ -f "$dir/fullchain.pem" ] || continue
    name=$(basename "$dir")
    # Only plain certificate names (they become a file name and server_name).
    case "$name" in *[!a-z0-9._-]*|.*) continue ;; esac
    sed -e "s|\${LISTEN_ADDR}|${LISTEN_ADDR:-0.0.0.0}|g" \
        -e "s|\${HTTPS_PORT}|${HTTPS_PORT:-443}|g" \
        -e "s|\${SERVER_NAME}|$name|g" \
        -e "s|\${CERT_DIR}|$CERT_DIR|g" \
        -e "s|\${CERT_NAME}|$name|g" \
        "$TEMPLATE" > "$OUT/acme-tls-$name.conf"
  done
}

state() { ls -l "$CERT_DIR/live" 2>/dev/null | md5sum; }

i=0
while ! ls "$CERT_DIR"/live/*/fullchain.pem >/dev/null 2>&1; do
  [ "$i" -ge "$WAIT" ] && { echo "acme-sidecar: no certificate in $CERT_DIR/live after ${WAIT}s; starting HTTP only (TLS servers follow when certificates appear)" >&2; break; }
  i=$((i + 1)); sleep 1
done
render

(
  last=$(state)
  while sleep "$INTERVAL"; do
    now=$(state)
    if [ "$now" != "$last" ]; then
      render && nginx -t -q && nginx -s reload && echo "acme-sidecar: certificates changed, nginx reloaded" >&2
      last=$now
    fi
  done
) &
