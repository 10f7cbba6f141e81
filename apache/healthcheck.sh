#!/bin/sh
# Healthy when Apache answers over TLS on its HTTPS port (no curl or wget in every base image).
printf 'GET /apache-healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' \
  | openssl s_client -quiet -connect 127.0.0.1:8443 -servername localhost 2>/dev/null \
  | head -n 1 | grep -q ' 200 '
