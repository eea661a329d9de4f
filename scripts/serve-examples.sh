#!/usr/bin/env bash
# The sample app and cookbook (examples/hello-app, examples/cookbooks) as git repositories local
# instances can fetch: DIR/hello-app.git and DIR/cookbooks.git (bare, branch main), a new commit
# whenever the examples changed. Prints DIR, whose paths are the repositories' URLs.
#   scripts/serve-examples.sh [DIR]     default: ${XDG_DATA_HOME:-~/.local/share}/opsworks-examples
# The agent reads a local path through the instance's live view of the host's disk file systems:
# not /tmp (each instance has its own, and the host's is missing there when it is a mount), not
# the server's data dir (hidden from instances). To serve the same repositories over the network
# too, as git://10.217.0.1/hello-app.git:
#   git daemon --export-all --reuseaddr --listen=10.217.0.1 --base-path=DIR DIR
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-${XDG_DATA_HOME:-$HOME/.local/share}/opsworks-examples}"
case "$(realpath -m -- "$dir")/" in
    /tmp/*)
        echo "serve-examples: $dir is under /tmp, which local instances do not share with the host; choose another directory" >&2
        exit 2 ;;
esac
mkdir -p -- "$dir"
dir="$(cd -- "$dir" && pwd)"
for name in hello-app cookbooks; do
    repo="$dir/$name.git"
    [[ -d "$repo" ]] || git init -q --bare -b main "$repo"
    # The example directory itself is the work tree of the commit (the index lives in the bare
    # repository); whoever owns the checkout, root may read it.
    g=(git -c safe.directory='*' -c user.name=opsworks-examples -c user.email=examples@opsworks.invalid
       --git-dir="$repo" --work-tree="$top/examples/$name")
    "${g[@]}" add -A .
    if ! "${g[@]}" rev-parse -q --verify HEAD >/dev/null || ! "${g[@]}" diff --cached --quiet HEAD; then
        "${g[@]}" commit -q -m "examples/$name of the opsworks repository"
    fi
    # For git's "dumb" HTTP protocol, should the directory be served by a plain web server.
    git --git-dir="$repo" update-server-info
done
echo "$dir"
