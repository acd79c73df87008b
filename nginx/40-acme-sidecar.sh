#!/bin/sh
# Runs in the stock nginx image before nginx starts (/docker-entrypoint.d/).
# 1. Waits up to ACME_WAIT_SECONDS for the sidecar's first certificates
#    (self-signed placeholders are written at once) so nginx starts with its
#    TLS servers; 0 starts at once with HTTP only (docker-compose.yml: nginx
#    first, so the sidecar's first challenges are served), and step 3 adds
#    the TLS servers when certificates appear.
# 2. Renders one TLS server per certificate in $CERT_DIR/live/ from
#    tls-server.conf.template, with the certificate's hostnames (its
#    subjectAltName, read from cert.pem) as server_name: a named certificate
#    (`shop=shop.example.com+cdn.example.com`) is chosen by SNI for its
#    hostnames, not by its name. A wildcard certificate (`*.example.com`,
#    live/_.example.com/) gets `server_name *.example.com ...`. A certificate for an IP address (RFC 8738)
#    has it in server_name too (IPv6 in brackets, as in a Host header), but
#    clients send no SNI for an address (RFC 6066 section 3), so nginx picks
#    the default server of the port: the first certificate with an address
#    of LISTEN_ADDR's family gets `default_server` on its `listen ... ssl;`
#    line (one per port: put other addresses in that certificate too).
# 3. Leaves a watcher running that reloads nginx when live/ changes: the
#    sidecar swaps the live/<name> links atomically on every new certificate.
set -eu
CERT_DIR=${CERT_DIR:-/etc/letsencrypt}
TEMPLATE=${ACME_TLS_TEMPLATE:-/etc/acme-sidecar/tls-server.conf.template}
OUT=${ACME_TLS_CONF_DIR:-/etc/nginx/conf.d}
WAIT=${ACME_WAIT_SECONDS:-120}
INTERVAL=${ACME_RELOAD_INTERVAL:-10}

# The dNSNames and iPAddresses in the subjectAltName of the PEM certificate
# $1, space-separated (IPv6 in its RFC 5952 form, in brackets): a walk of its
# DER in awk (the image has no openssl CLI; awk, od and base64 are in every
# official nginx image).
sans() {
  sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/{/-----/d;p;}' "$1" \
    | base64 -d 2>/dev/null | od -An -v -tu1 | awk '
    { for (f = 1; f <= NF; f++) b[++n] = $f + 0 }
    function len(   l, k) {
      l = b[p++]
      if (l < 128) return l
      k = l - 128; l = 0
      while (k-- > 0) l = l * 256 + b[p++]
      return l
    }
    END {
      # OID 2.5.29.17 (subjectAltName): 06 03 55 1d 11
      for (i = 1; i + 4 <= n; i++) {
        if (b[i] != 6 || b[i+1] != 3 || b[i+2] != 85 || b[i+3] != 29 || b[i+4] != 17) continue
        p = i + 5
        if (b[p] == 1) { p++; p += len() }   # critical: BOOLEAN
        if (b[p++] != 4) exit                # extnValue: OCTET STRING
        len()
        if (b[p++] != 48) exit               # SEQUENCE OF GeneralName
        end = len(); end += p
        out = ""
        while (p < end) {
          t = b[p++]; l = len()
          s = ""
          if (t == 130) {                    # [2] dNSName
            for (k = 0; k < l; k++) s = s sprintf("%c", b[p + k])
          } else if (t == 135 && l == 4) {   # [7] iPAddress, IPv4
            s = b[p] "." b[p + 1] "." b[p + 2] "." b[p + 3]
          } else if (t == 135 && l == 16) {  # [7] iPAddress, IPv6
            # RFC 5952: the longest run (2 or more) of zero groups is "::".
            bs = -1; bl = 1; cs = -1
            for (k = 0; k < 8; k++) {
              g[k] = b[p + 2 * k] * 256 + b[p + 2 * k + 1]
              if (g[k] != 0) { cs = -1; continue }
              if (cs < 0) { cs = k; cl = 0 }
              if (++cl > bl) { bs = cs; bl = cl }
            }
            for (k = 0; k < 8; k++) {
              if (k == bs) { s = s "::"; k += bl - 1; continue }
              if (s != "" && s !~ /:$/) s = s ":"
              s = s sprintf("%x", g[k])
            }
            s = "[" s "]"
          }
          if (s != "") out = out (out == "" ? "" : " ") s
          p += l
        }
        print out
        exit
      }
    }'
}

render() {
  rm -f "$OUT"/acme-tls-*.conf
  default_taken=""
  case "${LISTEN_ADDR:-0.0.0.0}" in *:*) family=6 ;; *) family=4 ;; esac
  for dir in "$CERT_DIR"/live/*/; do
    [ -f "$dir/fullchain.pem" ] || continue
    name=$(basename "$dir")
    # Only plain certificate names (they become a file name and server_name;
    # an IPv6 address's name, such as --1, may start with "-").
    case "$name" in *[!a-z0-9._-]*|.*) continue ;; esac
    names=""
    ip=""
    # A wildcard SAN (*.example.com, DNS-01) is a valid server_name; the
    # shell must not expand it as a file pattern on the way there.
    set -f
    for h in $(sans "$dir/cert.pem"); do
      case "$h" in
        '['*']')                             # IPv6: hex digits and colons only
          v6=${h#?}; v6=${v6%?}
          case "$v6" in *[!0-9a-f:]*|'') continue ;; esac
          ip="$ip 6" ;;
        '*.'*)                               # a wildcard: *.example.com
          rest=${h#\*.}
          case "$rest" in *[!a-z0-9.-]*|'') continue ;; esac ;;
        *[!a-z0-9.-]*|'') continue ;;
        *[!0-9.]*) ;;                        # a hostname
        *) ip="$ip 4" ;;                     # IPv4
      esac
      names="$names${names:+ }$h"
    done
    set +f
    # The default server of LISTEN_ADDR's port: the first certificate with an
    # address of that family (IPv6 when LISTEN_ADDR is one, such as [::]).
    default=""
    case "$ip" in *" $family"*)
      [ -n "$default_taken" ] || { default=" default_server"; default_taken=$name; } ;;
    esac
    sed -e "s|\${LISTEN_ADDR}|${LISTEN_ADDR:-0.0.0.0}|g" \
        -e "s|\${HTTPS_PORT}|${HTTPS_PORT:-443}|g" \
        -e "s|\${SERVER_NAME}|${names:-$name}|g" \
        -e "s|\${CERT_DIR}|$CERT_DIR|g" \
        -e "s|\${CERT_NAME}|$name|g" \
        -e "s|^\( *listen [^;]*\) ssl;|\1 ssl$default;|" \
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
