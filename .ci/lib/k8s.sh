# shellcheck shell=bash
# A real single-node Kubernetes cluster on this machine, for the Helm chart's tests: upstream
# Kubernetes, etcd, CoreDNS and Traefik built from the Go module proxy (there is no registry to
# pull k3s or kind from), run on a containerd of its own. The binaries are built once per set of
# versions and cached; the cluster itself lives in K8S_STATE_DIR and k8s_down takes the host back
# to what it was before k8s_up (processes, mounts, network namespaces, iptables, sysctls).
#
# As a library (.ci/run): k8s_build, k8s_down. As a command (the Kubernetes tests' global setup):
#   bash .ci/lib/k8s.sh build|schemas|paths|up|load IMAGE...|down|env
# schemas prints the schema folder; paths prints K8S_BIN, K8S_SCHEMAS and K8S_VERSION (KEY=value lines) for
# helm and kubeconform without a cluster; env prints the running cluster's $K8S_STATE_DIR/env.
#
# Reads: CI_DIR (.ci/run, or set below when run as a command); K8S_CACHE_DIR (default
#        /var/cache/bokeh-gateway-stack/k8s/<version>-<key>, the key made from every version
#        below and the recipes in .ci/k8s); K8S_GO_DIR (default /var/tmp/bokeh-gateway-stack-go:
#        GOPATH, module cache and build cache of a build, about 8 GiB at the peak, all deleted
#        after a successful build, so that only the binaries, images and schemas stay: a new
#        version rebuilds everything anyway, and its modules download in under a minute);
#        K8S_STATE_DIR (default /tmp/stack-k8s); K8S_POD_CIDR (default 10.244.0.0/16) and
#        K8S_SERVICE_CIDR (default 10.96.0.0/16), both /16s clear of Docker's bridges and the
#        swarm's pools; K8S_UP_TIMEOUT (default 180 s per wait)
# Sets:  K8S_BIN, K8S_IMAGES, K8S_SCHEMAS (k8s_paths), K8S_GO (k8s_ensure_go), K8S_NODE; writes
#        $K8S_STATE_DIR/env (k8s_up), KEY=value lines the tests read: KUBECONFIG, K8S_BIN
#        (kubectl, helm, kubeconform), K8S_NODE, K8S_TRAEFIK_NODEPORT (on 127.0.0.1),
#        K8S_INGRESS_CLASS, K8S_SCHEMAS, K8S_CONTAINERD_SOCKET, K8S_API
# Uses:  log, die, apt_install (common.sh)

# Every version the cluster is built from, in one place.
K8S_VERSION=v1.37.2
K8S_STAGING_VERSION=v0.37.2 # k8s.io/api, k8s.io/client-go, ... of the same release
ETCD_VERSION=v3.6.16
HELM_MODULE=helm.sh/helm/v3
HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.8.0
COREDNS_VERSION=v1.15.0
# v3.7 needs a nested module that the Go module proxy does not serve.
TRAEFIK_VERSION=v3.6.12
OPENAPI2JSONSCHEMA_VERSION=0.9.1
# Its own requirements, pinned and installed without their resolver: it asks for PyYAML < 6, which
# has no wheels for current Pythons, and works with 6.
OPENAPI2JSONSCHEMA_DEPS=(PyYAML==6.0.3 click==7.1.2 colorama==0.4.6 jsonref==0.2)
# The Go toolchain, fetched from the module proxy (golang.org/toolchain) when the host has none.
K8S_GO_VERSION=1.26.8
# Part of the cache key with the versions: raise it when the build commands below change.
K8S_BUILD_REVISION=2

K8S_GO_DIR=${K8S_GO_DIR:-/var/tmp/bokeh-gateway-stack-go}
K8S_STATE_DIR=${K8S_STATE_DIR:-/tmp/stack-k8s}
K8S_POD_CIDR=${K8S_POD_CIDR:-10.244.0.0/16}
K8S_SERVICE_CIDR=${K8S_SERVICE_CIDR:-10.96.0.0/16}
K8S_UP_TIMEOUT=${K8S_UP_TIMEOUT:-180}
K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

# The cache key: the versions above and the recipes under .ci/k8s (wrapper modules, pause).
k8s_cache_key() {
  {
    printf '%s\n' "$K8S_VERSION" "$K8S_STAGING_VERSION" "$ETCD_VERSION" "$HELM_MODULE" "$HELM_VERSION" \
      "$KUBECONFORM_VERSION" "$COREDNS_VERSION" "$TRAEFIK_VERSION" "$K8S_GO_VERSION" "$K8S_BUILD_REVISION"
    (cd "$CI_DIR/k8s" && find wrapper pause -type f | LC_ALL=C sort | xargs sha256sum)
  } | sha256sum | cut -c1-12
}

k8s_paths() {
  K8S_CACHE_DIR=${K8S_CACHE_DIR:-/var/cache/bokeh-gateway-stack/k8s/$K8S_VERSION-$(k8s_cache_key)}
  K8S_BIN=$K8S_CACHE_DIR/bin
  K8S_IMAGES=$K8S_CACHE_DIR/images
  K8S_SCHEMAS=$K8S_CACHE_DIR/schemas
}

# ---------------------------------------------------------------------------------------------
# build

# Sets K8S_GO to a Go of at least K8S_GO_VERSION's minor release: the host's, or the toolchain
# zip from the module proxy (the same file `go` itself fetches for GOTOOLCHAIN).
k8s_ensure_go() {
  local want=go${K8S_GO_VERSION%.*} have
  if have=$(go env GOVERSION 2>/dev/null) &&
    [[ $(printf '%s\n' "$want" "$have" | sort -V | head -n 1) == "$want" ]]; then
    K8S_GO=$(command -v go)
    return 0
  fi
  local dir=$K8S_GO_DIR/toolchain/go$K8S_GO_VERSION
  if [[ ! -x $dir/bin/go ]]; then
    local proxy=${GOPROXY:-https://proxy.golang.org}
    proxy=${proxy%%,*}
    local mod=v0.0.1-go$K8S_GO_VERSION.linux-amd64
    log "fetching Go $K8S_GO_VERSION from $proxy (golang.org/toolchain@$mod)"
    mkdir -p "$K8S_GO_DIR/toolchain"
    curl -fsSL "$proxy/golang.org/toolchain/@v/$mod.zip" -o "$K8S_GO_DIR/toolchain/go.zip"
    rm -rf "$K8S_GO_DIR/toolchain/unzip"
    unzip -q "$K8S_GO_DIR/toolchain/go.zip" -d "$K8S_GO_DIR/toolchain/unzip"
    mv "$K8S_GO_DIR/toolchain/unzip/golang.org/toolchain@$mod" "$dir"
    rm -rf "$K8S_GO_DIR/toolchain/unzip" "$K8S_GO_DIR/toolchain/go.zip"
    chmod +x "$dir"/bin/* "$dir"/pkg/tool/*/*
  fi
  K8S_GO=$dir/bin/go
}

# k8s_go ARGS...: go with the build's own GOPATH, module cache and build cache, static binaries.
k8s_go() {
  GOPATH=$K8S_GO_DIR GOMODCACHE=$K8S_GO_DIR/mod GOCACHE=$K8S_GO_DIR/cache GOFLAGS='' \
    GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off "$K8S_GO" "$@"
}

# k8s_timed NAME CMD...: runs CMD and logs how long it took.
k8s_timed() {
  local name=$1 start=$SECONDS
  shift
  "$@" || die "building $name failed"
  log "  $name: $((SECONDS - start))s"
}

# The packages the cluster runs with: Debian's containerd and runc, the CNI plugins (bridge,
# host-local, loopback, portmap, firewall), and what the kubelet and kube-proxy call.
k8s_install_packages() {
  apt_install containerd runc containernetworking-plugins iptables conntrack socat openssl \
    iproute2 mount python3-venv unzip curl
}

k8s_build() {
  k8s_paths
  k8s_install_packages
  if [[ -f $K8S_CACHE_DIR/complete ]]; then
    log "kubernetes binaries cached in $K8S_CACHE_DIR"
  else
    k8s_build_binaries
  fi
  k8s_schemas
}

k8s_build_binaries() {
  k8s_ensure_go
  log "building into $K8S_CACHE_DIR with $("$K8S_GO" version | awk '{print $3}') (module and build caches in $K8S_GO_DIR)"
  rm -rf "$K8S_CACHE_DIR"
  mkdir -p "$K8S_BIN" "$K8S_IMAGES" "$K8S_GO_DIR/src"
  local start=$SECONDS
  k8s_build_kubernetes
  k8s_build_etcd
  k8s_timed helm k8s_go_install_to "$K8S_BIN" \
    -ldflags "-s -w -X $HELM_MODULE/internal/version.version=$HELM_VERSION -X $HELM_MODULE/internal/version.gitTreeState=clean" \
    "$HELM_MODULE/cmd/helm@$HELM_VERSION"
  k8s_timed kubeconform k8s_go_install_to "$K8S_BIN" -ldflags "-s -w -X main.version=$KUBECONFORM_VERSION" \
    "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  k8s_timed coredns k8s_go_install_to "$K8S_CACHE_DIR/image-bin" -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
  k8s_build_traefik
  k8s_timed pause k8s_build_pause
  k8s_build_images
  k8s_schemas
  # Both caches are only worth their gigabytes during a build (8 GiB at the peak): a new version
  # rebuilds everything anyway, and downloading the modules again takes well under a minute.
  k8s_go clean -modcache
  rm -rf "$K8S_GO_DIR"/{cache,src,pkg,toolchain} "$K8S_CACHE_DIR/image-bin"
  rmdir "$K8S_GO_DIR" 2>/dev/null || true
  touch "$K8S_CACHE_DIR/complete"
  log "kubernetes binaries built in $((SECONDS - start))s: $(du -sh "$K8S_CACHE_DIR" | cut -f1) in $K8S_CACHE_DIR"
}

# k8s_go_install_to DIR GOFLAGS... PKG@VERSION: go install into DIR.
k8s_go_install_to() {
  local dir=$1
  shift
  mkdir -p "$dir"
  GOBIN=$dir k8s_go install -trimpath "$@"
}

# k8s_wrapper NAME: a copy of the wrapper module under K8S_GO_DIR/src, its go.mod filled in.
k8s_wrapper() {
  local name=$1 src=$K8S_GO_DIR/src/$1
  rm -rf "$src"
  mkdir -p "$src"
  cp -r "$CI_DIR/k8s/wrapper/$name/." "$src/"
  sed -e "s/@K8S_VERSION@/$K8S_VERSION/g" -e "s/@ETCD_VERSION@/$ETCD_VERSION/g" \
    -e "s/@TRAEFIK_VERSION@/$TRAEFIK_VERSION/g" "$src/go.mod.in" >"$src/go.mod"
  rm "$src/go.mod.in"
}

k8s_build_kubernetes() {
  local src=$K8S_GO_DIR/src/kubernetes gomod
  k8s_wrapper kubernetes
  # The staging modules are the ones k8s.io/kubernetes replaces with ./staging/... and requires.
  gomod=$(k8s_in "$K8S_GO_DIR" k8s_go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  [[ -f $gomod ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
  local m
  while read -r m; do
    grep -Eq "^\s+$m v0\.0\.0" "$gomod" && printf 'replace %s => %s %s\n' "$m" "$m" "$K8S_STAGING_VERSION" >>"$src/go.mod"
  done < <(sed -n 's#^\s*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$gomod")
  k8s_timed "kubernetes modules (go mod tidy)" k8s_in "$src" k8s_go mod tidy
  local minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local x ldflags="-s -w"
  for x in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $x.gitVersion=$K8S_VERSION -X $x.gitMajor=1 -X $x.gitMinor=$minor -X $x.gitTreeState=clean"
  done
  local cmd
  for cmd in "${K8S_COMMANDS[@]}"; do
    k8s_timed "$cmd" k8s_in "$src" k8s_go build -trimpath -ldflags "$ldflags" -o "$K8S_BIN/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
}

k8s_build_etcd() {
  local src=$K8S_GO_DIR/src/etcd
  k8s_wrapper etcd
  k8s_timed "etcd modules (go mod tidy)" k8s_in "$src" k8s_go mod tidy
  k8s_timed etcd k8s_in "$src" k8s_go build -trimpath -ldflags "-s -w" -o "$K8S_BIN/etcd" .
}

k8s_build_traefik() {
  local src=$K8S_GO_DIR/src/traefik
  k8s_wrapper traefik
  k8s_timed "traefik modules (go mod tidy)" k8s_in "$src" k8s_go mod tidy
  k8s_timed traefik k8s_in "$src" k8s_go build -trimpath \
    -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
    -o "$K8S_CACHE_DIR/image-bin/traefik" github.com/traefik/traefik/v3/cmd/traefik
}

# k8s_in DIR CMD...: CMD run in DIR, in a subshell.
k8s_in() {
  local dir=$1
  shift
  (cd "$dir" && "$@")
}

k8s_build_pause() {
  k8s_in "$CI_DIR/k8s/pause" k8s_go build -trimpath -ldflags "-s -w" -o "$K8S_CACHE_DIR/image-bin/pause" .
}

# The cluster's own images: one static binary each on an empty root, written as OCI archives
# that `ctr images import` reads, so that the build needs no Docker engine and no registry.
K8S_PAUSE_IMAGE=docker.io/bokeh-gateway-stack/k8s-pause:local
k8s_coredns_image() { printf 'docker.io/bokeh-gateway-stack/k8s-coredns:%s' "$COREDNS_VERSION"; }
k8s_traefik_image() { printf 'docker.io/bokeh-gateway-stack/k8s-traefik:%s' "$TRAEFIK_VERSION"; }

k8s_build_images() {
  k8s_oci_image pause "$K8S_PAUSE_IMAGE" /pause
  k8s_oci_image coredns "$(k8s_coredns_image)" /coredns
  k8s_oci_image traefik "$(k8s_traefik_image)" /traefik
}

# k8s_oci_image NAME REF ENTRYPOINT: $K8S_IMAGES/NAME.tar, an OCI image layout holding one
# uncompressed layer with image-bin/NAME at ENTRYPOINT, run as 65532 (nobody needs root).
k8s_oci_image() {
  local name=$1 ref=$2 entry=$3 dir
  dir=$(mktemp -d "$K8S_GO_DIR/oci.XXXXXX")
  mkdir -p "$dir/root" "$dir/layout/blobs/sha256"
  install -m 0755 "$K8S_CACHE_DIR/image-bin/$name" "$dir/root$entry"
  tar -C "$dir/root" --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$dir/layer.tar" ."$entry"
  local layer config manifest
  layer=$(k8s_blob "$dir" "$dir/layer.tar")
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["%s"],"User":"65532:65532","WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$entry" "${layer%% *}" >"$dir/config.json"
  config=$(k8s_blob "$dir" "$dir/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "${config%% *}" "${config##* }" "${layer%% *}" "${layer##* }" >"$dir/manifest.json"
  manifest=$(k8s_blob "$dir" "$dir/manifest.json")
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "${manifest%% *}" "${manifest##* }" "$ref" "${ref##*:}" >"$dir/layout/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/layout/oci-layout"
  tar -C "$dir/layout" --owner=0 --group=0 --numeric-owner -cf "$K8S_IMAGES/$name.tar" .
  rm -rf "$dir"
}

# k8s_blob DIR FILE: moves FILE into DIR's layout as a blob; prints "DIGEST SIZE".
k8s_blob() {
  local digest size
  digest=$(sha256sum "$2" | cut -d' ' -f1)
  size=$(stat -c %s "$2")
  mv "$2" "$1/layout/blobs/sha256/$digest"
  printf '%s %s\n' "$digest" "$size"
}

# ---------------------------------------------------------------------------------------------
# up

# The node's name, which the API server dials to reach the kubelet on 127.0.0.1: the host name
# where it resolves to 127.0.0.1 (as on these machines), else localhost (Debian's usual
# /etc/hosts maps the host name to 127.0.1.1, where the kubelet does not listen).
k8s_node_name() {
  local host
  host=$(hostname)
  if [[ $(getent ahostsv4 "$host" | awk 'NR == 1 { print $1 }') == 127.0.0.1 ]]; then
    printf '%s' "$host"
  else
    printf localhost
  fi
}
K8S_NODE=$(k8s_node_name)
K8S_BRIDGE=stack-k8s0
# The node's pod range (a /24 of K8S_POD_CIDR): the CNI bridge hands out its addresses.
k8s_node_subnet() { printf '%s.0/24' "$(k8s_cidr_prefix "$K8S_POD_CIDR")"; }
# The bridge's own address, where the API server listens: reachable from the host and from every
# pod, and from nowhere else (127.0.0.1 would be each pod's own loopback).
k8s_api_address() { printf '%s.1' "$(k8s_cidr_prefix "$K8S_POD_CIDR")"; }
k8s_service_ip() { printf '%s.%s' "$(k8s_cidr_prefix "$K8S_SERVICE_CIDR")" "$1"; }
# k8s_cidr_prefix A.B.0.0/16: A.B.0
k8s_cidr_prefix() { local a=${1%/*}; a=${a%.*}; printf '%s' "$a"; }

k8s_socket() { printf '%s/containerd/containerd.sock' "$K8S_STATE_DIR"; }
k8s_ctr() { ctr -a "$(k8s_socket)" -n k8s.io "$@"; }
k8s_kubectl() { "$K8S_BIN/kubectl" --kubeconfig "$K8S_STATE_DIR/admin.kubeconfig" "$@"; }

k8s_up() {
  k8s_paths
  [[ -f $K8S_CACHE_DIR/complete ]] || die "no kubernetes binaries in $K8S_CACHE_DIR: run bash .ci/lib/k8s.sh build"
  if [[ -f $K8S_STATE_DIR/env ]] && k8s_kubectl get --raw /readyz >/dev/null 2>&1 &&
    [[ $(k8s_kubectl get node "$K8S_NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]; then
    log "kubernetes cluster already up"
    return 0
  fi
  k8s_down
  k8s_install_packages
  [[ -d $K8S_SCHEMAS ]] || k8s_schemas
  local start=$SECONDS
  mkdir -p "$K8S_STATE_DIR"/{pids,logs,host}
  k8s_record_host
  k8s_pki
  k8s_kubeconfigs
  k8s_network
  k8s_start_containerd
  k8s_start_control_plane
  k8s_start_node
  k8s_addons
  k8s_write_env
  log "kubernetes $K8S_VERSION up in $((SECONDS - start))s (node $K8S_NODE, API https://$(k8s_api_address):6443, Traefik on 127.0.0.1:$(k8s_traefik_nodeport))"
}

# What k8s_down puts back: the sysctls, the iptables rules, the mounts, and which of the
# directories that the kubelet and the CNI plugins write to existed before.
K8S_HOST_DIRS=(/var/lib/kubelet /var/lib/cni /run/netns /var/log/pods /var/log/containers /etc/cni)
k8s_record_host() {
  local h=$K8S_STATE_DIR/host d
  sysctl -a 2>/dev/null | LC_ALL=C sort >"$h/sysctl"
  iptables-save >"$h/iptables"
  ip6tables-save >"$h/ip6tables" 2>/dev/null || true
  cut -d' ' -f5 /proc/self/mountinfo | LC_ALL=C sort >"$h/mounts"
  : >"$h/dirs"
  for d in "${K8S_HOST_DIRS[@]}"; do [[ -e $d ]] && printf '%s\n' "$d" >>"$h/dirs"; done
  if grep -Eq -- '^:(KUBE|CNI)-' "$h/iptables"; then
    log "warning: iptables already has KUBE-/CNI- chains (another cluster on this host?); k8s_down keeps those"
  fi
}

# k8s_cert NAME CN ORG SANS: an ECDSA key and a certificate signed by the cluster's CA (made
# first, by `k8s_cert ca`). SANS is openssl's subjectAltName list, or empty for client certs.
k8s_cert() {
  local name=$1 cn=$2 org=$3 sans=$4 pki=$K8S_STATE_DIR/pki subj
  subj="/CN=$cn"
  [[ -z $org ]] || subj="/O=$org$subj"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/$name.key" 2>/dev/null
  if [[ $name == ca ]]; then
    openssl req -x509 -new -key "$pki/ca.key" -subj "$subj" -days 30 -out "$pki/ca.crt" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    return 0
  fi
  local ext=$pki/$name.ext
  {
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'
    if [[ -n $sans ]]; then
      printf 'extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$sans"
    else
      printf 'extendedKeyUsage=clientAuth\n'
    fi
  } >"$ext"
  openssl req -new -key "$pki/$name.key" -subj "$subj" 2>/dev/null |
    openssl x509 -req -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
      -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$ext"
}

k8s_pki() {
  local pki=$K8S_STATE_DIR/pki
  mkdir -p "$pki"
  chmod 700 "$pki"
  k8s_cert ca stack-k8s-ca "" ""
  k8s_cert apiserver kube-apiserver "" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:$(k8s_api_address),IP:$(k8s_service_ip 1),IP:127.0.0.1"
  k8s_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters ""
  k8s_cert kubelet-server "system:node:$K8S_NODE" system:nodes "DNS:$K8S_NODE,DNS:localhost,IP:127.0.0.1"
  k8s_cert kubelet "system:node:$K8S_NODE" system:nodes ""
  k8s_cert admin stack-k8s-admin system:masters ""
  k8s_cert controller-manager system:kube-controller-manager "" ""
  k8s_cert scheduler system:kube-scheduler "" ""
  k8s_cert kube-proxy system:kube-proxy "" ""
  # The service-account token signing pair.
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/sa.key" 2>/dev/null
  openssl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

k8s_kubeconfigs() {
  local name cfg
  for name in admin kubelet controller-manager scheduler kube-proxy; do
    cfg=$K8S_STATE_DIR/$name.kubeconfig
    "$K8S_BIN/kubectl" config --kubeconfig "$cfg" set-cluster stack-k8s \
      --server "https://$(k8s_api_address):6443" --certificate-authority "$K8S_STATE_DIR/pki/ca.crt" --embed-certs >/dev/null
    "$K8S_BIN/kubectl" config --kubeconfig "$cfg" set-credentials "$name" \
      --client-certificate "$K8S_STATE_DIR/pki/$name.crt" --client-key "$K8S_STATE_DIR/pki/$name.key" --embed-certs >/dev/null
    "$K8S_BIN/kubectl" config --kubeconfig "$cfg" set-context stack-k8s --cluster stack-k8s --user "$name" >/dev/null
    "$K8S_BIN/kubectl" config --kubeconfig "$cfg" use-context stack-k8s >/dev/null
  done
}

# The pods' bridge, made before the API server starts so that it can listen on the bridge's
# address; the CNI bridge plugin takes it over as it is. Pod traffic is not masqueraded, so pods
# reach the host and each other and nothing beyond the machine.
k8s_network() {
  ip link add "$K8S_BRIDGE" type bridge
  ip addr add "$(k8s_api_address)/24" dev "$K8S_BRIDGE"
  ip link set "$K8S_BRIDGE" up
  mkdir -p "$K8S_STATE_DIR/cni/net.d" "$K8S_STATE_DIR/cni/ipam"
  cat >"$K8S_STATE_DIR/cni/net.d/10-stack-k8s.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "stack-k8s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$K8S_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$K8S_STATE_DIR/cni/ipam",
        "ranges": [[{ "subnet": "$(k8s_node_subnet)", "gateway": "$(k8s_api_address)" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "firewall" }
  ]
}
CNI
}

# k8s_start NAME CMD...: CMD in the background, detached (it outlives this script), its output in
# logs/NAME.log and its pid in pids/NAME.
k8s_start() {
  local name=$1
  shift
  setsid nohup "$@" >>"$K8S_STATE_DIR/logs/$name.log" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$K8S_STATE_DIR/pids/$name"
}

# k8s_wait WHAT NAME CMD...: retries CMD until it succeeds; dies with NAME's log if NAME exits
# or K8S_UP_TIMEOUT passes.
k8s_wait() {
  local what=$1 name=$2 deadline=$((SECONDS + K8S_UP_TIMEOUT))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$K8S_STATE_DIR/pids/$name")" 2>/dev/null || ((SECONDS >= deadline)); then
      tail -n 40 "$K8S_STATE_DIR/logs/$name.log" >&2 || true
      die "$what: not ready within ${K8S_UP_TIMEOUT}s (log: $K8S_STATE_DIR/logs/$name.log)"
    fi
    sleep 0.5
  done
}

k8s_start_containerd() {
  local dir=$K8S_STATE_DIR/containerd
  mkdir -p "$dir"
  sed -e "s#@STATE@#$dir#g" -e "s#@SANDBOX_IMAGE@#$K8S_PAUSE_IMAGE#g" \
    -e "s#@CNI_CONF_DIR@#$K8S_STATE_DIR/cni/net.d#g" "$CI_DIR/k8s/containerd.toml" >"$dir/config.toml"
  k8s_start containerd containerd --config "$dir/config.toml"
  k8s_wait containerd containerd k8s_ctr version
  local image
  for image in pause coredns traefik; do
    k8s_ctr images import "$K8S_IMAGES/$image.tar" >/dev/null
  done
}

k8s_start_control_plane() {
  local pki=$K8S_STATE_DIR/pki
  k8s_start etcd "$K8S_BIN/etcd" --name "$K8S_NODE" --data-dir "$K8S_STATE_DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "$K8S_NODE=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381 \
    --unsafe-no-fsync --log-level warn
  k8s_wait etcd etcd curl -fsS http://127.0.0.1:2379/health
  k8s_start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --bind-address "$(k8s_api_address)" --advertise-address "$(k8s_api_address)" --secure-port 6443 \
    --etcd-servers http://127.0.0.1:2379 \
    --service-cluster-ip-range "$K8S_SERVICE_CIDR" \
    --client-ca-file "$pki/ca.crt" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" \
    --kubelet-preferred-address-types Hostname,InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true --profiling=false
  k8s_wait kube-apiserver kube-apiserver k8s_kubectl get --raw /readyz
  k8s_start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$K8S_STATE_DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$K8S_STATE_DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$K8S_STATE_DIR/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --service-cluster-ip-range "$K8S_SERVICE_CIDR" --cluster-cidr "$K8S_POD_CIDR" --profiling=false
  k8s_start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$K8S_STATE_DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$K8S_STATE_DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig "$K8S_STATE_DIR/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false
  k8s_wait kube-controller-manager kube-controller-manager curl -fsSk https://127.0.0.1:10257/healthz
  k8s_wait kube-scheduler kube-scheduler curl -fsSk https://127.0.0.1:10259/healthz
}

k8s_start_node() {
  local pki=$K8S_STATE_DIR/pki
  sed -e "s#@STATE@#$K8S_STATE_DIR#g" -e "s#@SOCKET@#$(k8s_socket)#g" \
    -e "s#@CLUSTER_DNS@#$(k8s_service_ip 10)#g" "$CI_DIR/k8s/kubelet.yaml" >"$K8S_STATE_DIR/kubelet.yaml"
  k8s_start kubelet "$K8S_BIN/kubelet" --config "$K8S_STATE_DIR/kubelet.yaml" \
    --kubeconfig "$K8S_STATE_DIR/kubelet.kubeconfig" --hostname-override "$K8S_NODE"
  sed -e "s#@STATE@#$K8S_STATE_DIR#g" -e "s#@NODE@#$K8S_NODE#g" \
    -e "s#@POD_CIDR@#$K8S_POD_CIDR#g" "$CI_DIR/k8s/kube-proxy.yaml" >"$K8S_STATE_DIR/kube-proxy.yaml"
  k8s_start kube-proxy "$K8S_BIN/kube-proxy" --config "$K8S_STATE_DIR/kube-proxy.yaml"
  k8s_wait "node $K8S_NODE" kubelet k8s_kubectl wait --for condition=Ready "node/$K8S_NODE" --timeout 2s
  k8s_wait kube-proxy kube-proxy curl -fsS http://127.0.0.1:10256/healthz
}

k8s_addons() {
  sed -e "s#@COREDNS_IMAGE@#$(k8s_coredns_image)#g" -e "s#@CLUSTER_DNS@#$(k8s_service_ip 10)#g" \
    "$CI_DIR/k8s/manifests/coredns.yaml" | k8s_kubectl apply -f - >/dev/null
  sed -e "s#@TRAEFIK_IMAGE@#$(k8s_traefik_image)#g" "$CI_DIR/k8s/manifests/traefik.yaml" |
    k8s_kubectl apply -f - >/dev/null
  k8s_wait coredns kubelet k8s_kubectl -n kube-system rollout status deployment/coredns --timeout 2s
  k8s_wait "coredns answers" kubelet k8s_dns_answers kubernetes.default.svc.cluster.local
  k8s_wait traefik kubelet k8s_kubectl -n traefik rollout status deployment/traefik --timeout 2s
  # Traefik answers on its NodePort (404: no Ingress yet), through kube-proxy on 127.0.0.1.
  k8s_wait "traefik on 127.0.0.1" kubelet curl -sS -o /dev/null "http://127.0.0.1:$(k8s_traefik_nodeport)/"
}

k8s_traefik_nodeport() { k8s_kubectl -n traefik get service traefik -o jsonpath='{.spec.ports[0].nodePort}'; }

# k8s_dns_answers NAME: the cluster's DNS service returns an A record for NAME (queried from the
# host, through kube-proxy's service address).
k8s_dns_answers() {
  python3 - "$(k8s_service_ip 10)" "$1" <<'PY'
import socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
query = struct.pack(">HHHHHH", 0x4B38, 0x0100, 1, 0, 0, 0)
query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(query, (server, 53))
reply = s.recv(512)
rcode, answers = reply[3] & 0x0F, struct.unpack(">H", reply[6:8])[0]
sys.exit(0 if rcode == 0 and answers > 0 else 1)
PY
}

k8s_write_env() {
  local out=$K8S_STATE_DIR/env
  {
    printf 'KUBECONFIG=%s\n' "$K8S_STATE_DIR/admin.kubeconfig"
    printf 'K8S_BIN=%s\n' "$K8S_BIN"
    printf 'K8S_NODE=%s\n' "$K8S_NODE"
    printf 'K8S_TRAEFIK_NODEPORT=%s\n' "$(k8s_traefik_nodeport)"
    printf 'K8S_INGRESS_CLASS=traefik\n'
    printf 'K8S_SCHEMAS=%s\n' "$K8S_SCHEMAS"
    printf 'K8S_CONTAINERD_SOCKET=%s\n' "$(k8s_socket)"
    printf 'K8S_API=https://%s:6443\n' "$(k8s_api_address)"
  } >"$out.partial"
  mv "$out.partial" "$out"
}

# k8s_load IMAGE...: copies images from the Docker engine into the cluster's containerd; pods
# use them with imagePullPolicy: Never.
k8s_load() {
  [[ -S $(k8s_socket) ]] || die "the kubernetes cluster is not up (bash .ci/lib/k8s.sh up)"
  local image
  for image in "$@"; do
    docker image inspect "$image" >/dev/null 2>&1 || die "$image: no such image in the Docker engine"
    docker save "$image" | k8s_ctr images import - >/dev/null
    log "loaded $image"
  done
}

# ---------------------------------------------------------------------------------------------
# down

# The sysctls that the kubelet (vm.*, kernel.*), kube-proxy (route_localnet, conntrack) and the
# CNI plugins (forwarding) set; k8s_down writes back the values that k8s_up recorded.
K8S_SYSCTLS=(
  vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes
  net.ipv4.conf.all.route_localnet net.ipv4.ip_forward net.ipv4.conf.all.forwarding
  net.ipv6.conf.all.forwarding net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait net.netfilter.nf_conntrack_tcp_be_liberal
)

# Stops everything k8s_up started and takes the host back to what k8s_up recorded. Nothing up
# (no state directory) is a no-op.
k8s_down() {
  [[ -d $K8S_STATE_DIR ]] || return 0
  local start=$SECONDS
  # The kubelet first, or it restarts the containers that are being stopped.
  k8s_stop kube-proxy kubelet
  k8s_remove_containers
  # Each after the ones that talk to it, so that none waits on a peer that is already gone.
  k8s_stop kube-scheduler kube-controller-manager
  k8s_stop kube-apiserver
  k8s_stop etcd containerd
  k8s_kill_leftovers
  k8s_unmount
  k8s_remove_netns
  ip link delete "$K8S_BRIDGE" 2>/dev/null || true
  k8s_restore_iptables iptables
  k8s_restore_iptables ip6tables
  k8s_restore_sysctls
  k8s_remove_cgroups
  k8s_remove_host_dirs
  rm -rf --one-file-system "$K8S_STATE_DIR"
  log "kubernetes cluster down in $((SECONDS - start))s"
}

k8s_pid() { cat "$K8S_STATE_DIR/pids/$1" 2>/dev/null; }

# k8s_stop NAME...: SIGTERM to each recorded process, SIGKILL to those alive after 15 s.
k8s_stop() {
  local name pid pids=() deadline=$((SECONDS + 15))
  for name in "$@"; do
    pid=$(k8s_pid "$name") || continue
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  done
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# Every container of the cluster's containerd, killed and deleted while containerd still runs,
# so that their shims exit too.
k8s_remove_containers() {
  [[ -S $(k8s_socket) ]] && kill -0 "$(k8s_pid containerd)" 2>/dev/null || return 0
  local ids id
  mapfile -t ids < <(k8s_ctr tasks ls -q 2>/dev/null)
  for id in "${ids[@]}"; do k8s_ctr tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
  for id in "${ids[@]}"; do k8s_ctr tasks delete -f "$id" >/dev/null 2>&1 || true; done
  mapfile -t ids < <(k8s_ctr containers ls -q 2>/dev/null)
  ((${#ids[@]} == 0)) || k8s_ctr containers delete "${ids[@]}" >/dev/null 2>&1 || true
}

# What can outlive a containerd that died first: its shims (their command line names the
# cluster's socket) and the processes in the kubelet's pod cgroups.
k8s_kill_leftovers() {
  local sock pids=() p
  sock=$(k8s_socket)
  for p in /proc/[0-9]*; do
    tr '\0' '\n' 2>/dev/null <"$p/cmdline" | grep -Fxq -- "$sock" && pids+=("${p#/proc/}")
  done
  local d
  for d in /sys/fs/cgroup/*/kubepods; do
    [[ -d $d ]] || continue
    mapfile -t -O "${#pids[@]}" pids < <(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null)
  done
  ((${#pids[@]} == 0)) && return 0
  log "killing ${#pids[@]} processes left by the cluster's containerd"
  kill -KILL "${pids[@]}" 2>/dev/null || true
  sleep 0.5
}

# Mounts made since k8s_up under the paths the cluster uses, deepest first.
k8s_unmount() {
  local before=$K8S_STATE_DIR/host/mounts m
  [[ -f $before ]] || return 0
  cut -d' ' -f5 /proc/self/mountinfo | LC_ALL=C sort | LC_ALL=C comm -13 "$before" - |
    { grep -E "^($K8S_STATE_DIR|/var/lib/kubelet|/run/netns|/var/run/netns)(/|$)" || true; } | sort -r |
    while read -r m; do
      m=$(printf '%b' "${m//\\/\\0}") # mountinfo writes spaces as \040
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "warning: could not unmount $m"
    done
}

# The pods' network namespaces (containerd names them cni-<uuid>) made since k8s_up.
k8s_remove_netns() {
  local ns
  for ns in /run/netns/cni-*; do
    [[ -e $ns ]] || continue
    grep -Fxq "$ns" "$K8S_STATE_DIR/host/mounts" 2>/dev/null && continue
    umount "$ns" 2>/dev/null || true
    rm -f "$ns"
  done
}

# k8s_restore_iptables iptables|ip6tables: removes the chains that the cluster made (KUBE-*,
# CNI-*) and the rules that jump to them, and nothing else: Docker keeps adding and removing its
# own rules while the cluster runs, so writing back the whole saved table would undo those.
k8s_restore_iptables() {
  local cmd=$1 before=$K8S_STATE_DIR/host/$1 table plan
  [[ -f $before ]] || return 0
  command -v "$cmd-save" >/dev/null || return 0
  plan=$K8S_STATE_DIR/host/$cmd.restore
  : >"$plan"
  for table in filter nat mangle raw; do
    "$cmd-save" -t "$table" >"$plan.now" 2>/dev/null || continue
    local chains rules
    chains=$(k8s_chains "$plan.now" | LC_ALL=C comm -23 - <(k8s_chains "$before"))
    [[ -n $chains ]] || continue
    rules=$(grep -E -- '-j (KUBE|CNI)-' "$plan.now" | grep -vE '^-A (KUBE|CNI)-' |
      grep -Fxv -f <(grep '^-A ' "$before"; echo '-A never-a-rule') | sed 's/^-A /-D /' || true)
    {
      printf '*%s\n' "$table"
      [[ -z $rules ]] || printf '%s\n' "$rules"
      printf '%s\n' "$chains" | sed 's/^/-F /'
      printf '%s\n' "$chains" | sed 's/^/-X /'
      printf 'COMMIT\n'
    } >>"$plan"
  done
  rm -f "$plan.now"
  [[ -s $plan ]] || return 0
  "$cmd-restore" --noflush <"$plan" || log "warning: $cmd-restore could not remove every cluster rule (plan: $plan)"
}

# k8s_chains FILE: the KUBE-* and CNI-* chains that an iptables-save output declares, sorted.
k8s_chains() { { grep -E '^:(KUBE|CNI)-' "$1" || true; } | cut -d' ' -f1 | cut -c2- | LC_ALL=C sort -u; }

k8s_restore_sysctls() {
  local before=$K8S_STATE_DIR/host/sysctl key was now
  [[ -f $before ]] || return 0
  for key in "${K8S_SYSCTLS[@]}"; do
    was=$(grep -m1 "^$key = " "$before" | sed 's/^[^=]* = //') || continue
    now=$(sysctl -n "$key" 2>/dev/null) || continue
    [[ $now == "$was" ]] || sysctl -qw "$key=$was" || log "warning: could not restore $key=$was"
  done
}

# The kubelet's cgroupfs hierarchy (kubepods under every controller), deepest first.
k8s_remove_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || log "warning: could not remove every cgroup under $d"
  done
}

# The directories the kubelet and the CNI plugins made; one that existed before k8s_up keeps
# what others put there (only the kubelet's log links into the state directory go).
k8s_remove_host_dirs() {
  local d
  for d in "${K8S_HOST_DIRS[@]}"; do
    [[ -e $d ]] || continue
    if grep -Fxq "$d" "$K8S_STATE_DIR/host/dirs" 2>/dev/null; then
      [[ $d != /var/log/containers ]] || find "$d" -maxdepth 1 -type l -lname "$K8S_STATE_DIR/*" -delete
      continue
    fi
    rm -rf --one-file-system "$d"
  done
}

# ---------------------------------------------------------------------------------------------
# schemas

# Offline JSON schemas for kubeconform, made from the OpenAPI document of the same Kubernetes
# release (api/openapi-spec/swagger.json in the k8s.io/kubernetes module), standalone and strict.
# Use: kubeconform -strict -schema-location "$K8S_SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json"
k8s_schemas() {
  k8s_paths
  if [[ -f $K8S_SCHEMAS/complete ]]; then
    log "kubeconform schemas cached in $K8S_SCHEMAS"
    return 0
  fi
  k8s_ensure_go
  local dir venv=$K8S_CACHE_DIR/openapi2jsonschema start=$SECONDS
  dir=$(k8s_in "$K8S_GO_DIR" k8s_go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  [[ -f $dir/api/openapi-spec/swagger.json ]] || die "no api/openapi-spec/swagger.json in k8s.io/kubernetes@$K8S_VERSION"
  if [[ ! -x $venv/bin/openapi2jsonschema ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps \
      "openapi2jsonschema==$OPENAPI2JSONSCHEMA_VERSION" "${OPENAPI2JSONSCHEMA_DEPS[@]}"
  fi
  rm -rf "$K8S_SCHEMAS"
  mkdir -p "$K8S_SCHEMAS"
  (cd "$K8S_SCHEMAS" && "$venv/bin/openapi2jsonschema" --kubernetes --expanded --stand-alone --strict \
    -o . "$dir/api/openapi-spec/swagger.json" >/dev/null)
  touch "$K8S_SCHEMAS/complete"
  log "kubeconform schemas: $(find "$K8S_SCHEMAS" -name '*.json' | wc -l) files in $K8S_SCHEMAS in $((SECONDS - start))s"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  CI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  # shellcheck source=common.sh
  source "$CI_DIR/lib/common.sh"
  case ${1:-} in
    build) k8s_build ;;
    schemas) k8s_schemas && printf '%s\n' "$K8S_SCHEMAS" ;;
    paths) k8s_paths && printf 'K8S_BIN=%s\nK8S_SCHEMAS=%s\nK8S_VERSION=%s\n' "$K8S_BIN" "$K8S_SCHEMAS" "$K8S_VERSION" ;;
    up)
      # A cluster that did not come up is taken down again (k8s_wait printed its log).
      trap 'rc=$?; ((rc == 0)) || { log "up failed: taking the cluster down"; k8s_down; }' EXIT
      k8s_up
      ;;
    load) shift; k8s_load "$@" ;;
    down) k8s_down ;;
    env) cat "$K8S_STATE_DIR/env" ;;
    *) echo "usage: bash .ci/lib/k8s.sh build|schemas|paths|up|load IMAGE...|down|env" >&2; exit 2 ;;
  esac
fi
