# shellcheck shell=bash
# A real Docker Swarm of three nodes on one machine, for the stack file in deploy/swarm/: each
# node is a container running its own engine (trixie's Docker 26.1), the images come from a
# local registry, and the host's CLI drives the swarm through node1's engine socket. Everything
# it makes carries the SWARM_NAME prefix, and swarm_down removes all of it.
#
# As a library (.ci/run): ensure_swarm_images. As a command (the swarm tests' global setup):
#   bash .ci/lib/swarm.sh images|up|push|down|env
#
# Reads: CI_DIR, CI_TMP (.ci/run, or set below when run as a command); IMAGE_TAG; SWARM_NAME
#        (default stack-swarm), SWARM_SUBNET (default 172.31.254.0/24), SWARM_POOL (default
#        10.199.0.0/16), SWARM_STATE_DIR (default /tmp/$SWARM_NAME), SWARM_NODES (default 3)
# Sets:  exports SWARM_NODE_IMAGE, SWARM_REGISTRY_IMAGE (ensure_swarm_images; either may be
#        given instead, e.g. from a registry); writes
#        $SWARM_STATE_DIR/env (swarm_up, swarm_push), which the tests read
# Uses:  log, die (common.sh); ensure_base_image (base-images.sh)

SWARM_NAME=${SWARM_NAME:-stack-swarm}
SWARM_SUBNET=${SWARM_SUBNET:-172.31.254.0/24}
SWARM_POOL=${SWARM_POOL:-10.199.0.0/16}
SWARM_STATE_DIR=${SWARM_STATE_DIR:-/tmp/$SWARM_NAME}
SWARM_NODES=${SWARM_NODES:-3}
SWARM_REGISTRY=$SWARM_NAME-registry
# The port the stack publishes on every node that runs a gateway (deploy/swarm/stack.yml).
SWARM_GATEWAY_PORT=8000
SWARM_START_TIMEOUT=60

# Exports SWARM_NODE_IMAGE and SWARM_REGISTRY_IMAGE (recipes in .ci/images/swarm-node and
# .ci/images/registry), building each one that is missing; one the caller set is kept.
ensure_swarm_images() {
  ensure_base_image swarm-node SWARM_NODE_IMAGE
  ensure_base_image registry SWARM_REGISTRY_IMAGE
}

swarm_node() { printf '%s-node%s' "$SWARM_NAME" "$1"; }
swarm_socket() { printf '%s/node%s/docker.sock' "$SWARM_STATE_DIR" "$1"; }
# node_docker N ARGS...: the host's CLI against node N's engine.
node_docker() {
  local n=$1
  shift
  DOCKER_HOST=unix://$(swarm_socket "$n") docker "$@"
}

# Starts the network, the registry and the nodes, and makes them one swarm: node1 the manager,
# the others workers. Idempotent: a swarm whose nodes are all ready is left as it is; anything
# less is removed and made again.
swarm_up() {
  ensure_swarm_images
  if [[ -S $(swarm_socket 1) ]] && [[ $(node_docker 1 node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$') == "$SWARM_NODES" ]]; then
    log "swarm $SWARM_NAME already up"
    write_swarm_env
    return 0
  fi
  swarm_down
  mkdir -p "$SWARM_STATE_DIR"
  docker network create --driver bridge --subnet "$SWARM_SUBNET" "$SWARM_NAME" >/dev/null
  docker run -d --name "$SWARM_REGISTRY" --network "$SWARM_NAME" \
    -p 127.0.0.1::5000 --label "$SWARM_NAME=registry" "$SWARM_REGISTRY_IMAGE" >/dev/null

  local n
  for ((n = 1; n <= SWARM_NODES; n++)); do start_node "$n"; done
  for ((n = 1; n <= SWARM_NODES; n++)); do wait_for_node "$n"; done

  # Overlay networks take their subnets from SWARM_POOL, away from Docker's bridges.
  node_docker 1 swarm init --advertise-addr eth0 \
    --default-addr-pool "$SWARM_POOL" --default-addr-pool-mask-length 24 >/dev/null
  local token manager
  token=$(node_docker 1 swarm join-token -q worker)
  manager=$(docker inspect --format "{{(index .NetworkSettings.Networks \"$SWARM_NAME\").IPAddress}}" "$(swarm_node 1)")
  for ((n = 2; n <= SWARM_NODES; n++)); do
    node_docker "$n" swarm join --token "$token" "$manager:2377" >/dev/null
  done
  write_swarm_env
  log "swarm $SWARM_NAME: $SWARM_NODES nodes, registry $(registry_address)"
}

# start_node N: one node container. --privileged where the host allows it; where root lacks
# CAP_SYS_RESOURCE (these VMs) Docker refuses it ("unable to apply caps"), and the node gets every
# other capability, all devices and unconfined /sys instead (its entrypoint remounts /sys rw).
start_node() {
  local n=$1 name dir
  name=$(swarm_node "$n")
  dir=$(dirname "$(swarm_socket "$n")")
  mkdir -p "$dir"
  local common=(
    -d --name "$name" --hostname "node$n" --network "$SWARM_NAME"
    --label "$SWARM_NAME=node"
    # overlay2 does not work on the container's own overlay root filesystem.
    -v "$name-docker:/var/lib/docker"
    -v "$dir:/run/swarm-host"
    # The host reaches a gateway that runs on this node (host-mode port) here, on loopback only.
    -p "127.0.0.1::$SWARM_GATEWAY_PORT"
  )
  local engine=(
    # Without the flag, dockerd silently falls back to the slow vfs driver.
    --storage-driver=overlay2
    --insecure-registry "$SWARM_REGISTRY:5000"
    # The compose file's no-new-privileges, which Swarm services cannot set: every container.
    --no-new-privileges
    -H unix:///var/run/docker.sock -H unix:///run/swarm-host/docker.sock
  )
  if docker run --privileged "${common[@]}" "$SWARM_NODE_IMAGE" "${engine[@]}" >/dev/null 2>"$SWARM_STATE_DIR/run.err"; then
    return 0
  fi
  log "$name: --privileged refused ($(head -n 1 "$SWARM_STATE_DIR/run.err")); using explicit capabilities"
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker run "${common[@]}" \
    --cap-add ALL --cap-drop SYS_RESOURCE --device-cgroup-rule 'a *:* rwm' \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --security-opt systempaths=unconfined \
    "$SWARM_NODE_IMAGE" "${engine[@]}" >/dev/null
}

wait_for_node() {
  local n=$1 deadline=$((SECONDS + SWARM_START_TIMEOUT))
  until node_docker "$n" version >/dev/null 2>&1; do
    if ((SECONDS >= deadline)) || [[ $(docker inspect --format '{{.State.Running}}' "$(swarm_node "$n")") != true ]]; then
      docker logs --tail 30 "$(swarm_node "$n")" >&2 || true
      die "$(swarm_node "$n"): its engine did not start within ${SWARM_START_TIMEOUT}s"
    fi
    sleep 0.5
  done
}

registry_address() { printf '127.0.0.1:%s' "$(docker port "$SWARM_REGISTRY" 5000/tcp | head -n 1 | sed 's/.*://')"; }

# The facts the tests need, as KEY=value lines.
write_swarm_env() {
  local n out=$SWARM_STATE_DIR/env
  {
    printf 'SWARM_NAME=%s\n' "$SWARM_NAME"
    printf 'SWARM_NODES=%s\n' "$SWARM_NODES"
    printf 'SWARM_REGISTRY=%s:5000\n' "$SWARM_REGISTRY"
    printf 'SWARM_REGISTRY_PUSH=%s\n' "$(registry_address)"
    for ((n = 1; n <= SWARM_NODES; n++)); do
      printf 'SWARM_NODE%s=%s\n' "$n" "$(swarm_node "$n")"
      printf 'SWARM_NODE%s_SOCKET=%s\n' "$n" "$(swarm_socket "$n")"
      printf 'SWARM_NODE%s_GATEWAY=%s\n' "$n" "$(docker port "$(swarm_node "$n")" "$SWARM_GATEWAY_PORT/tcp" | head -n 1)"
    done
  } >"$out.partial"
  mv "$out.partial" "$out"
}

# Pushes the stack's images (IMAGE_TAG) to the registry, from the host: 127.0.0.1 is trusted as
# loopback, so no --insecure-registry is needed here. The nodes pull them as
# $SWARM_REGISTRY:5000/...
swarm_push() {
  local tag=${IMAGE_TAG:-local} push image
  push=$(registry_address)
  for image in bokeh gateway; do
    docker image inspect "bokeh-gateway-stack/$image:$tag" >/dev/null 2>&1 ||
      die "bokeh-gateway-stack/$image:$tag is not built (docker compose build, with IMAGE_TAG=$tag)"
    docker tag "bokeh-gateway-stack/$image:$tag" "$push/bokeh-gateway-stack/$image:$tag"
    docker push --quiet "$push/bokeh-gateway-stack/$image:$tag" >/dev/null
    # Only the registry keeps the pushed name; the host keeps its image list as it was.
    docker image rm "$push/bokeh-gateway-stack/$image:$tag" >/dev/null
  done
  log "pushed bokeh and gateway :$tag to $push"
}

# Removes every container, volume and network that swarm_up made, and the state folder.
swarm_down() {
  docker info >/dev/null 2>&1 || return 0 # no engine: nothing of ours can exist
  local ids
  mapfile -t ids < <(docker ps -aq --filter "label=$SWARM_NAME")
  ((${#ids[@]} == 0)) || docker rm -f -v "${ids[@]}" >/dev/null
  local n
  for ((n = 1; n <= SWARM_NODES; n++)); do
    docker volume rm "$(swarm_node "$n")-docker" >/dev/null 2>&1 || true
  done
  docker network rm "$SWARM_NAME" >/dev/null 2>&1 || true
  rm -rf "$SWARM_STATE_DIR"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  CI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  CI_TMP=$(mktemp -d -t stack-swarm.XXXXXX)
  trap 'rm -rf "$CI_TMP"' EXIT
  # shellcheck source=common.sh
  source "$CI_DIR/lib/common.sh"
  # shellcheck source=node.sh
  source "$CI_DIR/lib/node.sh"
  # shellcheck source=base-images.sh
  source "$CI_DIR/lib/base-images.sh"
  case ${1:-} in
    images) ensure_swarm_images ;;
    up) swarm_up ;;
    push) swarm_push ;;
    down) swarm_down ;;
    env) cat "$SWARM_STATE_DIR/env" ;;
    *) echo "usage: bash .ci/lib/swarm.sh images|up|push|down|env" >&2; exit 2 ;;
  esac
fi
