#!/usr/bin/env bash
# Installs everything warren needs on Debian (as root): system packages, Node.js 26 when
# the machine's node is older than 24 (scripts/node-toolchain.sh), npm dependencies (npm ci
# builds the native addon and the static CNI plugin build/Release/warren-cni with node-gyp
# against that Node's headers) and the build.
# Idempotent: skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
source scripts/node-toolchain.sh
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
   || [ ! -f build/Release/warren_native.node ] || [ ! -f build/Release/warren-cni ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
