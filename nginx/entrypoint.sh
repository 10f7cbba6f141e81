#!/bin/sh
# Starts NGINX in front of the gateway. Reads its settings from the environment, checks them,
# provides a TLS certificate (the one given, else a self-signed development one), writes the
# settings NGINX cannot read from the environment into /tmp/nginx, then runs NGINX.
#
#   NGINX_HTTPS_PORT      public HTTPS port, used in HTTP->HTTPS redirects (default 8443)
#   NGINX_REDIRECT_HTTPS  true: answer plain HTTP with a redirect to HTTPS (default true)
#   TLS_CERT_FILE         certificate chain, PEM (default /etc/nginx/tls/tls.crt)
#   TLS_KEY_FILE          its private key, PEM (default /etc/nginx/tls/tls.key)
#   BOKEH_PREFIX          the Bokeh prefix, for caching its static files (default /bokeh)
#   PUBLIC_ORIGINS        names for the development certificate, besides localhost and 127.0.0.1
#                         (default: localhost and 127.0.0.1 on GATEWAY_PORT and NGINX_HTTPS_PORT)
#   GATEWAY_PORT          the gateway's host port, for the default PUBLIC_ORIGINS (default 8000)
#
# The rules for the settings that the gateway and the launcher read too are in rules.sh.
set -eu

say() { printf 'nginx-entrypoint: %s\n' "$*" >&2; }
fail() { say "$*"; exit 2; }

# shellcheck source=rules.sh
. /usr/local/lib/nginx-entrypoint/rules.sh

https_port=$(rules_port NGINX_HTTPS_PORT 8443) || exit 2
prefix=$(rules_prefix) || exit 2
origins=$(rules_public_origins) || exit 2
redirect=${NGINX_REDIRECT_HTTPS:-true}
cert=${TLS_CERT_FILE:-/etc/nginx/tls/tls.crt}
key=${TLS_KEY_FILE:-/etc/nginx/tls/tls.key}

case $redirect in
  true|1|yes|on) redirect=1 ;;
  false|0|no|off|'') redirect=0 ;;
  *) fail "NGINX_REDIRECT_HTTPS must be true or false (got \"$redirect\"); set NGINX_REDIRECT_HTTPS=true to send plain HTTP to HTTPS" ;;
esac

mkdir -p /tmp/nginx

if [ -f "$cert" ] && [ -f "$key" ]; then
  [ -r "$cert" ] && [ -r "$key" ] || fail "cannot read $cert or $key as uid $(id -u); make them readable by that user"
  say "TLS: using the certificate in $cert"
elif [ -e "$cert" ] || [ -e "$key" ]; then
  fail "TLS: found only one of $cert and $key; mount both (TLS_CERT_FILE and TLS_KEY_FILE) or neither"
else
  # Names the development certificate is valid for: localhost plus every host in PUBLIC_ORIGINS.
  names="DNS:localhost,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1"
  for origin in $origins; do
    host=$(printf '%s' "$origin" | sed -E 's#^[a-zA-Z]+://##; s#:[0-9]+$##; s#/.*$##')
    case $host in
      ''|localhost|127.0.0.1) ;;
      *[!0-9.]*) names="$names,DNS:$host" ;;
      *) names="$names,IP:$host" ;;
    esac
  done
  cert=/tmp/nginx/dev-cert.pem
  key=/tmp/nginx/dev-key.pem
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 -subj '/CN=localhost' \
    -addext "subjectAltName=$names" -keyout "$key" -out "$cert" 2>/dev/null \
    || fail "TLS: could not generate a development certificate (is openssl installed?)"
  say "WARNING: no certificate at ${TLS_CERT_FILE:-/etc/nginx/tls/tls.crt}; generated a SELF-SIGNED DEVELOPMENT certificate for $names, valid 30 days."
  say "WARNING: browsers will warn about it. For real use, mount your certificate and key (see README, \"TLS\")."
fi

if [ "$https_port" = 443 ]; then suffix=''; else suffix=":$https_port"; fi

cat > /tmp/nginx/runtime.conf <<CONF
ssl_certificate $cert;
ssl_certificate_key $key;
map \$host \$redirect_to_https { default $redirect; }
map \$host \$https_port_suffix { default "$suffix"; }
CONF

# Bokeh's routes that depend on the prefix: static files, cached here and in browsers when
# versioned (see nginx.conf), and the WebSockets, passed on unbuffered.
cat > /tmp/nginx/static.conf <<CONF
location ~ ^$prefix/[^/]+/ws\$ {
    proxy_pass http://gateway;
    proxy_buffering off;
}

location ^~ $prefix/static/ {
    proxy_pass http://gateway;
    proxy_cache bokeh_static;
    proxy_cache_valid 200 1d;
    proxy_no_cache \$unversioned;
    proxy_cache_bypass \$unversioned;
    proxy_hide_header Cache-Control;
    # The gateway's own cache status; NGINX's, from its cache, is X-Cache-Status.
    proxy_hide_header X-Cache;
    add_header Cache-Control \$static_cache_control always;
    add_header X-Cache-Status \$upstream_cache_status always;
    add_header X-Content-Type-Options nosniff always;
}
CONF

say "HTTP on 8080 (redirect to HTTPS: $([ "$redirect" = 1 ] && echo on || echo off)), HTTPS on 8443, public HTTPS port $https_port, Bokeh prefix $prefix"
exec nginx -g 'daemon off;'
