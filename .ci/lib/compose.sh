# shellcheck shell=bash
# Compose v2 and buildx CLI plugins, and the builder they use. Bookworm has neither; trixie's
# packages are Go binaries needing only libc6, so we extract just the plugin binaries and never
# add trixie to the machine's apt sources.
#
# Reads: CI_TMP (.ci/run); DOCKER_BUILDKIT, BUILDX_BUILDER (environment, optional)
# Sets:  CLI_PLUGIN_DIR; exports DOCKER_BUILDKIT and BUILDX_BUILDER (configure_builder)
# Uses:  log, die, debian_mirror_uri (common.sh)

CLI_PLUGIN_DIR=/usr/libexec/docker/cli-plugins

ensure_cli_plugins() {
  if docker compose version >/dev/null 2>&1 && docker buildx version >/dev/null 2>&1; then
    log "compose and buildx already installed"
    return 0
  fi
  local tmp=$CI_TMP/cli-plugins
  fetch_trixie_debs "$tmp" docker-compose docker-buildx
  local deb
  for deb in "$tmp"/debs/*.deb; do dpkg -x "$deb" "$tmp/root"; done
  install -d "$CLI_PLUGIN_DIR"
  install -m 755 "$tmp/root$CLI_PLUGIN_DIR/docker-compose" "$tmp/root$CLI_PLUGIN_DIR/docker-buildx" "$CLI_PLUGIN_DIR/"
  docker compose version >/dev/null || die "docker compose does not work after installing $CLI_PLUGIN_DIR/docker-compose"
  docker buildx version >/dev/null || die "docker buildx does not work after installing $CLI_PLUGIN_DIR/docker-buildx"
}

# fetch_trixie_debs DIR PKG...: downloads the .debs into DIR/debs with a private apt state whose
# only source is trixie on the host's own mirror. The host's apt.conf.d (proxy, date checks)
# still applies; its lists, cache and sources are untouched.
fetch_trixie_debs() {
  local dir=$1
  shift
  mkdir -p "$dir"/{state/lists/partial,cache/archives/partial,sources.list.d,debs}
  printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' \
    "$(debian_mirror_uri)" >"$dir/sources.list"
  local apt_opts=(
    -o "Dir::State=$dir/state"
    -o "Dir::Cache=$dir/cache"
    -o "Dir::Etc::sourcelist=$dir/sources.list"
    -o "Dir::Etc::sourceparts=$dir/sources.list.d"
    -o "APT::Sandbox::User=root"
  )
  apt-get "${apt_opts[@]}" update -qq
  (cd "$dir/debs" && apt-get "${apt_opts[@]}" download -qq "$@")
}

# Compose and `docker build` go through buildx's default builder, i.e. the engine's own BuildKit
# (0.8, Dockerfile syntax 1.2): multi-stage builds, `ARG X=...` before `FROM ${X}`, RUN
# --mount=type=cache and COPY --chmod work; heredocs, COPY --link and `# syntax=` lines (a
# frontend image pull) do not. Any other builder (docker-container driver) would pull
# moby/buildkit, so pin the default one even if a user made another current.
configure_builder() {
  export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-1}
  export BUILDX_BUILDER=${BUILDX_BUILDER:-default}
  log "builds use BUILDX_BUILDER=$BUILDX_BUILDER, DOCKER_BUILDKIT=$DOCKER_BUILDKIT"
}
