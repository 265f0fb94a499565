#!/usr/bin/env bash
# Installs what the manifest tests (tests/unit/deploy) need, cached under .local/k8s-tools/ like
# Kafka's jars under .local/kafka/; `make install` runs it, and it does nothing when both are
# there already. After it, the tests run offline.
#   kustomize: the pinned Go module sigs.k8s.io/kustomize/kustomize/v5, built with the machine's
#     Go (1.24 or later) into .local/k8s-tools/bin/kustomize.
#   the CRD schemas (Strimzi, CloudNativePG, KEDA, Prometheus Operator): the npm packages that
#     package.json pins, exactly as package-lock.json says (npm ci, integrity-checked), into
#     .local/k8s-tools/crd-schemas/node_modules; validate-crds.mjs runs them with Node.js.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
dest=${CC_K8S_TOOLS:-$root/.local/k8s-tools}
KUSTOMIZE_VERSION=v5.8.1

say() { printf 'k8s-tools: %s\n' "$*" >&2; }
need() {   # need COMMAND DEBIAN-PACKAGE...: apt-get install them when COMMAND is missing
    local cmd=$1; shift
    command -v "$cmd" >/dev/null && return
    [[ $EUID -eq 0 ]] || { say "need $cmd (Debian: $*); install it and retry"; exit 1; }
    say "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2 ||
        { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2; }
}

if [[ "$("$dest/bin/kustomize" version 2>/dev/null)" != "$KUSTOMIZE_VERSION" ]]; then
    need go golang-go
    say "kustomize $KUSTOMIZE_VERSION: go install (about a minute)"
    mkdir -p "$dest/bin"
    GOBIN="$dest/bin" GOTOOLCHAIN=local go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi

schemas=$dest/crd-schemas
stamp="lock-sha256=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [[ "$(cat "$schemas/.installed" 2>/dev/null)" != "$stamp" ]]; then
    need npm nodejs npm
    say "CRD schemas: npm ci"
    rm -rf "$schemas" && mkdir -p "$schemas"
    cp "$here/package.json" "$here/package-lock.json" "$schemas/"
    (cd "$schemas" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
    echo "$stamp" >"$schemas/.installed"
fi
