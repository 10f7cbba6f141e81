# shellcheck shell=bash
# Shared helpers for .ci/run: logging, step timing, apt and Debian mirror access.
#
# Reads: PYTHON_IMAGE, NODE_IMAGE, NGINX_IMAGE (base-images.sh) and CHROMIUM_PATH (browser.sh),
#        in print_versions only
# Sets:  STEP_TIMES, DEBIAN_SOURCES, APT_UPDATED; exports DEBIAN_FRONTEND=noninteractive
# Uses:  nothing from the other libraries; every other library uses its log, die and apt_install

# Every progress line carries a wall-clock stamp so slow steps stand out in CI logs.
log() { printf '[ci %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

STEP_TIMES=()

# run_step NAME CMD...: runs CMD in this shell (so its exports survive) and records its duration.
run_step() {
  local name=$1 start=$SECONDS
  shift
  log "$name..."
  "$@"
  STEP_TIMES+=("$name: $((SECONDS - start))s")
  log "$name: done in $((SECONDS - start))s"
}

print_step_times() {
  local t
  for t in "${STEP_TIMES[@]}"; do log "  $t"; done
}

export DEBIAN_FRONTEND=noninteractive
DEBIAN_SOURCES=/etc/apt/sources.list.d/debian.sources

# The package lists only need refreshing once per run, and only if something is installed.
APT_UPDATED=
apt_update_once() {
  [[ -n $APT_UPDATED ]] && return 0
  apt-get update -qq
  APT_UPDATED=1
}

# apt_install PKG...: installs the packages that are missing, without recommends.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  apt_update_once
  log "apt-get install ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

host_codename() { (. /etc/os-release && echo "$VERSION_CODENAME"); }

# The mirror URI of the stanza that serves the host's own suite. Read at run time so that no
# mirror host name is ever written into the repository.
debian_mirror_uri() {
  [[ -r $DEBIAN_SOURCES ]] || die "$DEBIAN_SOURCES not found: cannot tell which Debian mirror to use"
  local uri
  uri=$(awk -v RS='' -v suite="$(host_codename)" '{
      uris = ""; ok = 0
      n = split($0, lines, "\n")
      for (i = 1; i <= n; i++) {
        if (lines[i] ~ /^URIs:/) { uris = lines[i]; sub(/^URIs:[ \t]*/, "", uris) }
        if (lines[i] ~ /^Suites:/) { m = split(lines[i], w, /[ \t]+/); for (j = 2; j <= m; j++) if (w[j] == suite) ok = 1 }
      }
      if (ok && uris != "") { split(uris, u, /[ \t]+/); print u[1]; exit }
    }' "$DEBIAN_SOURCES")
  [[ -n $uri ]] || die "no stanza for suite $(host_codename) in $DEBIAN_SOURCES"
  printf '%s\n' "$uri"
}

# The host's debian.sources with every suite moved to trixie (trixie, trixie-updates,
# trixie-security), for building trixie images from the same mirrors.
trixie_sources() {
  sed -E "/^Suites:/ s/(^|[[:space:]])$(host_codename)/\1trixie/g" "$DEBIAN_SOURCES"
}

print_versions() {
  log "docker client $(docker version --format '{{.Client.Version}}'), engine $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
  log "$(docker compose version), buildx $(docker buildx version | awk '{print $2}')"
  log "node $(node --version) ($(command -v node)), npm $(npm --version)"
  log "PYTHON_IMAGE=${PYTHON_IMAGE:-} NODE_IMAGE=${NODE_IMAGE:-} NGINX_IMAGE=${NGINX_IMAGE:-} APACHE_IMAGE=${APACHE_IMAGE:-} PROMETHEUS_IMAGE=${PROMETHEUS_IMAGE:-}"
  log "$("$CHROMIUM_PATH" --version 2>/dev/null) ($CHROMIUM_PATH)"
}
