#!/bin/sh
# Starts Apache httpd in front of the gateway. Reads its settings from the environment, checks
# them, provides a TLS certificate (the one given, else a self-signed development one), writes
# the settings httpd.conf uses into /tmp/apache/runtime.conf, then runs httpd in the foreground.
#
#   APACHE_HTTPS_PORT      public HTTPS port, used in HTTP->HTTPS redirects (default 8443)
#   APACHE_REDIRECT_HTTPS  true: answer plain HTTP with a redirect to HTTPS (default true)
#   APACHE_TLS_CERT_FILE   certificate chain, PEM (default /usr/local/apache2/tls/tls.crt)
#   APACHE_TLS_KEY_FILE    its private key, PEM (default /usr/local/apache2/tls/tls.key)
#   BOKEH_PREFIX           the Bokeh prefix, for the caching headers of its static files (default /bokeh)
#   PUBLIC_ORIGINS         names for the development certificate (default: localhost, 127.0.0.1)
set -eu

say() { printf 'apache-entrypoint: %s\n' "$*" >&2; }
fail() { say "$*"; exit 2; }

https_port=${APACHE_HTTPS_PORT:-8443}
redirect=${APACHE_REDIRECT_HTTPS:-true}
cert=${APACHE_TLS_CERT_FILE:-/usr/local/apache2/tls/tls.crt}
key=${APACHE_TLS_KEY_FILE:-/usr/local/apache2/tls/tls.key}
prefix=${BOKEH_PREFIX:-/bokeh}
origins=${PUBLIC_ORIGINS:-}

case $https_port in
  ''|*[!0-9]*) fail "APACHE_HTTPS_PORT must be a port number (got \"$https_port\"); set APACHE_HTTPS_PORT=8444" ;;
esac
[ "$https_port" -ge 1 ] && [ "$https_port" -le 65535 ] || fail "APACHE_HTTPS_PORT must be between 1 and 65535 (got \"$https_port\"); set APACHE_HTTPS_PORT=8444"
case $redirect in
  true|1|yes|on) redirect=1 ;;
  false|0|no|off|'') redirect=0 ;;
  *) fail "APACHE_REDIRECT_HTTPS must be true or false (got \"$redirect\"); set APACHE_REDIRECT_HTTPS=true to send plain HTTP to HTTPS" ;;
esac
printf '%s' "$prefix" | grep -Eq '^(/[A-Za-z0-9._~-]+)+$' \
  || fail "BOKEH_PREFIX must be a path like /bokeh (got \"$prefix\"); set BOKEH_PREFIX=/bokeh, the same value the gateway and Bokeh get"

mkdir -p /tmp/apache

if [ -f "$cert" ] && [ -f "$key" ]; then
  [ -r "$cert" ] && [ -r "$key" ] || fail "cannot read $cert or $key as uid $(id -u); make them readable by that user"
  say "TLS: using the certificate in $cert"
elif [ -e "$cert" ] || [ -e "$key" ]; then
  fail "TLS: found only one of $cert and $key; mount both (APACHE_TLS_CERT_FILE and APACHE_TLS_KEY_FILE) or neither"
else
  # Names the development certificate is valid for: localhost plus every host in PUBLIC_ORIGINS.
  names="DNS:localhost,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1"
  for origin in $(printf '%s' "$origins" | tr ',' ' '); do
    host=$(printf '%s' "$origin" | sed -E 's#^[a-zA-Z]+://##; s#:[0-9]+$##; s#/.*$##')
    case $host in
      ''|localhost|127.0.0.1) ;;
      *[!0-9.]*) names="$names,DNS:$host" ;;
      *) names="$names,IP:$host" ;;
    esac
  done
  cert=/tmp/apache/dev-cert.pem
  key=/tmp/apache/dev-key.pem
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 -subj '/CN=localhost' \
    -addext "subjectAltName=$names" -keyout "$key" -out "$cert" 2>/dev/null \
    || fail "TLS: could not generate a development certificate (is openssl installed?)"
  say "WARNING: no certificate at ${APACHE_TLS_CERT_FILE:-/usr/local/apache2/tls/tls.crt}; generated a SELF-SIGNED DEVELOPMENT certificate for $names, valid 30 days."
  say "WARNING: browsers will warn about it. For real use, mount your certificate and key (see apache/README.md, \"TLS\")."
fi

if [ "$https_port" = 443 ]; then suffix=''; else suffix=":$https_port"; fi

# Values httpd.conf reads as ${NAME}. Paths are quoted there; none of these holds a quote, since
# the checks above allow only digits, path characters and the files' own names.
case $cert$key in *'"'*) fail "TLS: certificate and key paths must not contain a double quote" ;; esac
{
  printf 'Define TLS_CERT "%s"\n' "$cert"
  printf 'Define TLS_KEY "%s"\n' "$key"
  printf 'Define HTTPS_PORT_SUFFIX "%s"\n' "$suffix"
  printf 'Define BOKEH_PREFIX "%s"\n' "$prefix"
  [ "$redirect" = 1 ] && printf 'Define REDIRECT_HTTPS\n'
} > /tmp/apache/runtime.conf

say "HTTP on 8080 (redirect to HTTPS: $([ "$redirect" = 1 ] && echo on || echo off)), HTTPS on 8443, public HTTPS port $https_port, Bokeh prefix $prefix"
exec httpd -DFOREGROUND
