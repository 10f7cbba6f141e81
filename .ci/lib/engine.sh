# shellcheck shell=bash
# Docker engine: Debian's docker.io (20.10), started by hand because these machines have no init.
#
# Reads: CI_DOCKERD_LOG (environment, optional)
# Sets:  CI_DOCKERD_LOG (default /var/log/dockerd-ci.log), DOCKERD_START_TIMEOUT, DOCKERD_PID
#        (when it starts dockerd); exports DOCKER_API_VERSION when the client is newer than the engine
# Uses:  log, die, apt_install (common.sh)

CI_DOCKERD_LOG=${CI_DOCKERD_LOG:-/var/log/dockerd-ci.log}
DOCKERD_START_TIMEOUT=60

ensure_engine() {
  if docker_usable; then
    log "engine already running"
    return 0
  fi
  if ! command -v dockerd >/dev/null; then
    install_engine_packages
  fi
  if ! dockerd_running; then
    log "starting dockerd (log: $CI_DOCKERD_LOG)"
    # setsid + nohup: the daemon must outlive this script (the tests and later runs reuse it).
    setsid nohup dockerd >>"$CI_DOCKERD_LOG" 2>&1 </dev/null &
    DOCKERD_PID=$!
  fi
  wait_for_engine
}

install_engine_packages() {
  # Without a policy-rc.d, the package's postinst would start its own dockerd through the init
  # script, with another log file; deny that for the install and start the daemon ourselves.
  local policy=/usr/sbin/policy-rc.d added=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    added=1
  fi
  # mmdebstrap comes along in the same apt run: the base images need it on machines like this.
  local rc=0
  apt_install docker.io mmdebstrap || rc=$?
  [[ -n $added ]] && rm -f "$policy"
  ((rc == 0)) || die "could not install docker.io"
}

dockerd_running() {
  local pid
  pid=$(cat /var/run/docker.pid 2>/dev/null) || return 1
  kill -0 "$pid" 2>/dev/null
}

# A newer client refuses an older engine only if API negotiation fails; then pin the engine's API.
docker_usable() {
  local out
  out=$(docker version --format '{{.Server.APIVersion}}' 2>&1) && return 0
  if [[ $out =~ [Mm]aximum\ supported\ API\ version\ is\ ([0-9.]+) ]]; then
    export DOCKER_API_VERSION=${BASH_REMATCH[1]}
    log "client is newer than the engine: DOCKER_API_VERSION=$DOCKER_API_VERSION"
    docker version >/dev/null 2>&1 && return 0
  fi
  return 1
}

wait_for_engine() {
  local deadline=$((SECONDS + DOCKERD_START_TIMEOUT))
  until docker_usable; do
    if [[ -n ${DOCKERD_PID:-} ]] && ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
      tail -n 30 "$CI_DOCKERD_LOG" >&2 || true
      die "dockerd exited during start-up (log: $CI_DOCKERD_LOG)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$CI_DOCKERD_LOG" >&2 || true
      die "dockerd did not answer within ${DOCKERD_START_TIMEOUT}s (log: $CI_DOCKERD_LOG)"
    fi
    sleep 1
  done
}
