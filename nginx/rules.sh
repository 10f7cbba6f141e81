# shellcheck shell=sh
# Rules for settings that NGINX's entrypoint shares with the gateway (gateway/src/config.ts) and
# the Bokeh launcher (bokeh/launcher/settings.py). All three are checked against the cases in
# tests/rules/cases.json (this file by nginx/tests/test_entrypoint_rules.py), so keep them in step.
#
# Sourced by entrypoint.sh (POSIX sh). Each function reads its variables from the environment
# and prints the value to use; on a bad value it prints the problem and the fix to stderr and
# fails with status 2. Function bodies run in subshells, so they set no variables of the caller.

# rules_trim TEXT: TEXT without the spaces, tabs and line breaks around it, as the gateway and
# the launcher read every setting (an empty result means "not set").
rules_trim() (
  text=$1
  while :; do
    case $text in
      [[:space:]]*) text=${text#?} ;;
      *[[:space:]]) text=${text%?} ;;
      *) break ;;
    esac
  done
  printf '%s' "$text"
)

rules_problem() { printf 'nginx-entrypoint: %s\n' "$*" >&2; exit 2; }

# rules_port NAME DEFAULT: the port in variable NAME (DEFAULT when unset or blank): ASCII digits,
# from 1 to 65535, printed without leading zeros.
rules_port() (
  eval "given=\${$1:-}"
  port=$(rules_trim "$given")
  [ -n "$port" ] || port=$2
  case $port in
    *[!0-9]*) rules_problem "$1 must be a port number (got \"$given\"); set $1=$2" ;;
  esac
  # Leading zeros off, so the number is read as decimal and compared as a number.
  while :; do
    case $port in
      0?*) port=${port#0} ;;
      *) break ;;
    esac
  done
  if [ "${#port}" -gt 5 ] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    rules_problem "$1 must be between 1 and 65535 (got \"$given\"); set $1=$2"
  fi
  printf '%s\n' "$port"
)

# rules_prefix: BOKEH_PREFIX (/bokeh when unset or blank). Plain path characters only, because it
# is pasted into NGINX's configuration and into Bokeh's route patterns; no segment starts with a
# dot, so no "." or "..".
rules_prefix() (
  prefix=$(rules_trim "${BOKEH_PREFIX:-}")
  [ -n "$prefix" ] || prefix=/bokeh
  case $prefix in
    *[!A-Za-z0-9._~/-]* | [!/]* | */ | *//* | */.*)
      rules_problem "BOKEH_PREFIX must be a path like /bokeh (got \"${BOKEH_PREFIX:-}\"); set BOKEH_PREFIX=/bokeh, the same value the gateway and Bokeh get" ;;
  esac
  printf '%s\n' "$prefix"
)

# rules_origin SCHEME HOST PORT: an origin, without the port when it is the scheme's default.
rules_origin() (
  case $1:$3 in
    http:80 | https:443) printf '%s://%s\n' "$1" "$2" ;;
    *) printf '%s://%s:%s\n' "$1" "$2" "$3" ;;
  esac
)

# rules_public_origins: one origin a line. PUBLIC_ORIGINS as given (entries trimmed, empty ones
# dropped), else localhost and 127.0.0.1 on GATEWAY_PORT (http), then on NGINX_HTTPS_PORT and
# APACHE_HTTPS_PORT (https). All three ports are checked even when PUBLIC_ORIGINS is set.
rules_public_origins() (
  gateway_port=$(rules_port GATEWAY_PORT 8000) || exit 2
  https_port=$(rules_port NGINX_HTTPS_PORT 8443) || exit 2
  apache_port=$(rules_port APACHE_HTTPS_PORT 8444) || exit 2
  given=$(rules_trim "${PUBLIC_ORIGINS:-}")
  if [ -n "$given" ]; then
    printf '%s\n' "$given" | tr ',' '\n' | while IFS= read -r entry; do
      entry=$(rules_trim "$entry")
      [ -z "$entry" ] || printf '%s\n' "$entry"
    done
  else
    for host in localhost 127.0.0.1; do rules_origin http "$host" "$gateway_port"; done
    for host in localhost 127.0.0.1; do rules_origin https "$host" "$https_port"; done
    for host in localhost 127.0.0.1; do rules_origin https "$host" "$apache_port"; done
  fi
)
