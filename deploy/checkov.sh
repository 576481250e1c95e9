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
builds="kubernetes kubernetes/base"
for dir in "$here"/kubernetes/overlays/*/; do  # every overlay, as tests/deploy builds them
  builds="$builds kubernetes/overlays/$(basename "$dir")"
done
for build in $builds; do
  kubectl kustomize "$here/$build" > "$out/$(echo "$build" | tr / _).yaml"
done
cp "$root/Dockerfile" "$out/Dockerfile"
"$checkov" --config-file "$here/checkov.yaml" --directory "$out"
