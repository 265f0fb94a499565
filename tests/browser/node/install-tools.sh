#!/usr/bin/env bash
# Installs what the console's browser tests (tests/browser) load into the pages they check,
# cached under .local/node/ like the manifest tests' tools under .local/k8s-tools/; `make
# install` runs it (make console-test-tools), and it does nothing when they are there already.
# After it, the tests run offline.
#   axe-core: the npm package that package.json pins, exactly as package-lock.json says (npm ci,
#     integrity-checked), into .local/node/npm/node_modules, linked as .local/node/axe-core; the
#     tests inject its axe.min.js (tests/browser/tools.py, AXE_JS).
# The browser itself is Debian's chromium (with fonts-noto-cjk for the Chinese pages), which
# .ci/run installs; this script only says when it is missing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
dest=${CC_NODE_TOOLS:-$root/.local/node}

say() { printf 'console-test-tools: %s\n' "$*" >&2; }

stamp="lock-sha256=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [[ "$(cat "$dest/npm/.installed" 2>/dev/null)" != "$stamp" || ! -f $dest/axe-core/axe.min.js ]]; then
    if ! command -v npm >/dev/null; then
        [[ $EUID -eq 0 ]] || { say "need npm (Debian: nodejs npm); install it and retry"; exit 1; }
        say "apt-get install -y nodejs npm"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >&2 ||
            { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >&2; }
    fi
    say "axe-core: npm ci into $dest/npm"
    rm -rf "$dest/npm" "$dest/axe-core" && mkdir -p "$dest/npm"
    cp "$here/package.json" "$here/package-lock.json" "$dest/npm/"
    (cd "$dest/npm" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
    ln -s npm/node_modules/axe-core "$dest/axe-core"
    echo "$stamp" >"$dest/npm/.installed"
fi

command -v chromium >/dev/null ||
    say "WARNING: no chromium: the browser tests (tests/browser) need Debian's chromium: apt-get install chromium fonts-noto-cjk (.ci/run does)"
if ! fc-list ':lang=zh' 2>/dev/null | grep -q .; then
    say "WARNING: no Chinese font: the browser tests' screenshots show boxes for Chinese: apt-get install fonts-noto-cjk (.ci/run does)"
fi
