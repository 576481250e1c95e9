#!/bin/sh
# checkov on the Dockerfile and on every kustomize build (base, default, overlays), offline.
# Usage: CHECKOV=path/to/checkov sh deploy/checkov.sh   (make lint-deploy installs checkov in
# its own virtualenv and runs this). Exits non-zero on any failed check that is not skipped.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
checkov=${CHECKOV:-checkov}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for build in kubernetes kubernetes/base kubernetes/overlays/web-config kubernetes/overlays/central kubernetes/overlays/remote-write; do
  kubectl kustomize "$here/$build" > "$out/$(echo "$build" | tr / _).yaml"
done
cp "$root/Dockerfile" "$out/Dockerfile"
"$checkov" --config-file "$here/checkov.yaml" --directory "$out"
