#!/usr/bin/env bash
# Installs everything warren needs on Debian (as root): system packages, npm
# dependencies (npm ci builds the native addon with node-gyp), the build and
# dist/warren-cni, the CNI plugin as one executable (scripts/build-cni-plugin.mjs).
# Idempotent: skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
   || [ ! -f build/Release/warren_native.node ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
npm run build:cni --silent -- --if-stale
