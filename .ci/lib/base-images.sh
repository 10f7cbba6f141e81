# shellcheck shell=bash
# Local base images built from Debian trixie packages, for machines that cannot pull from a
# registry. The recipes live in .ci/images/<name>/ (see the README there). Each image is tagged
# with a hash of its recipe, and a tag that already exists is not built again.
#
# Reads: CI_DIR, CI_TMP (.ci/run); CI_NODE_DIR (node.sh); PYTHON_IMAGE, NODE_IMAGE, NGINX_IMAGE,
#        APACHE_IMAGE, PROMETHEUS_IMAGE and CI_REBUILD_IMAGES (environment, optional)
# Sets:  CI_IMAGES_DIR, CA_SOURCE_DIR, IMAGE_REPO_PREFIX, MMDEBSTRAP_COMMON_ARGS,
#        MMDEBSTRAP_CLEANUP_HOOK; exports PYTHON_IMAGE, NODE_IMAGE, NGINX_IMAGE, APACHE_IMAGE,
#        PROMETHEUS_IMAGE
# Uses:  log, die, apt_install, trixie_sources (common.sh); ensure_node_dist (node.sh)

CI_IMAGES_DIR=$CI_DIR/images
CA_SOURCE_DIR=/usr/local/share/ca-certificates
IMAGE_REPO_PREFIX=stack-base

# The mmdebstrap options shared by all images; they are part of every recipe hash.
# In the hooks, "$1" (the image root) is expanded by mmdebstrap's shell, not here.
# shellcheck disable=SC2016
MMDEBSTRAP_COMMON_ARGS=(
  --mode=root --variant=minbase --include=ca-certificates
  # Like the official slim images: no docs, man pages or translations (also for packages that
  # later Dockerfile steps install: mmdebstrap keeps these options in the image).
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  # The egress intercepts TLS: every image trusts the machine's extra CAs. (Quiet, because
  # update-ca-certificates warns that the bundle it just wrote holds more than one certificate.)
  --customize-hook='mkdir -p "$1/usr/local/share/ca-certificates"
for c in '"$CA_SOURCE_DIR"'/*.crt; do [ -e "$c" ] && cp "$c" "$1/usr/local/share/ca-certificates/"; done
chroot "$1" update-ca-certificates >/dev/null 2>&1'
)
# shellcheck disable=SC2016
MMDEBSTRAP_CLEANUP_HOOK='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/apt/* "$1"/var/log/dpkg.log'

# Exports PYTHON_IMAGE, NODE_IMAGE, NGINX_IMAGE, APACHE_IMAGE and PROMETHEUS_IMAGE, which docker-compose.yml
# passes to the Dockerfiles as their base image.
ensure_base_images() {
  ensure_base_image python PYTHON_IMAGE
  ensure_base_image node NODE_IMAGE
  ensure_base_image nginx NGINX_IMAGE
  ensure_base_image apache APACHE_IMAGE
  ensure_base_image prometheus PROMETHEUS_IMAGE
}

# ensure_base_image NAME VAR: exports VAR as the tag of the local NAME image, building it if
# needed. A VAR that the caller already set (e.g. an image from their registry) is kept as is.
ensure_base_image() {
  local name=$1 var=$2 tag
  if [[ -n ${!var:-} ]]; then
    log "$var=${!var} (set by the caller: no local image)"
    return 0
  fi
  # The node image copies the official binary from the host's Node 24 install.
  [[ $name == node ]] && ensure_node_dist
  tag=$IMAGE_REPO_PREFIX/$name:$(<"$CI_IMAGES_DIR/$name/tag")-$(recipe_hash "$name")
  if [[ ${CI_REBUILD_IMAGES:-0} == 0 ]] && docker image inspect "$tag" >/dev/null 2>&1; then
    log "$tag: already built"
  else
    build_base_image "$name" "$tag"
  fi
  export "$var=$tag"
}

# Hash of everything that goes into an image: the recipe files, the shared mmdebstrap options,
# the CA certificates and, for node, the Node and npm versions. Paths are left out, so every
# clone of the repository gets the same tags.
recipe_hash() {
  local name=$1 f
  {
    for f in "$CI_IMAGES_DIR/$name"/* "$CA_SOURCE_DIR"/*.crt; do
      [[ -f $f ]] || continue
      printf '== %s\n' "${f##*/}"
      cat "$f"
    done
    printf '%s\n' "${MMDEBSTRAP_COMMON_ARGS[@]}" "$MMDEBSTRAP_CLEANUP_HOOK"
    if [[ $name == node ]]; then
      "$CI_NODE_DIR/bin/node" --version
      "$CI_NODE_DIR/bin/node" -p '"npm " + require(process.argv[1]).version' \
        "$CI_NODE_DIR/lib/node_modules/npm/package.json"
    fi
  } | sha256sum | cut -c1-12
}

build_base_image() {
  local name=$1 tag=$2
  local recipe=$CI_IMAGES_DIR/$1 tar=$CI_TMP/$1.tar packages changes=() line
  apt_install mmdebstrap
  packages=$(grep -v '^[[:space:]]*\(#\|$\)' "$recipe/packages" | paste -sd, -)
  while IFS= read -r line; do
    [[ -z $line || $line == \#* ]] || changes+=(--change "$line")
  done <"$recipe/changes"

  log "building $tag from trixie: ca-certificates,$packages"
  local args=("${MMDEBSTRAP_COMMON_ARGS[@]}" --include="$packages")
  [[ -f $recipe/customize ]] && args+=(--customize-hook="sh $(printf %q "$recipe/customize") \"\$1\"")
  args+=(--customize-hook="$MMDEBSTRAP_CLEANUP_HOOK")
  # The sources go in on stdin: the host's own mirrors, with the suites moved to trixie.
  trixie_sources | NODE_DIST=$CI_NODE_DIR mmdebstrap --quiet "${args[@]}" trixie "$tar" -
  docker import "${changes[@]}" "$tar" "$tag" >/dev/null
  rm -f "$tar"

  check_base_image "$name" "$tag"
  log "$tag: $(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%d MB", $1 / 1e6}')"
}

check_base_image() {
  local name=$1 tag=$2 recipe=$CI_IMAGES_DIR/$1 out
  if ! out=$(docker run --rm --network none "$tag" sh -ec "$(<"$recipe/check")" 2>&1); then
    printf '%s\n' "$out" >&2
    docker image rm "$tag" >/dev/null
    die "$tag fails the checks in $recipe/check"
  fi
  if [[ -f $recipe/probe ]] && ! out=$(docker run --rm "$tag" sh -ec "$(<"$recipe/probe")" 2>&1); then
    printf '%s\n' "$out" >&2
    log "WARNING: $tag cannot reach its package registry ($recipe/probe failed):" \
      "Dockerfile steps that install packages from it will fail"
  fi
}
