#!/usr/bin/env bash
# Installs everything warren needs on Debian (as root): system packages, npm
# dependencies (npm ci builds the native addon and the static CNI plugin
# build/Release/warren-cni with node-gyp) and the build.
# Idempotent: skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
   || [ ! -f build/Release/warren_native.node ] || [ ! -f build/Release/warren-cni ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
