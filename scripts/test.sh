#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every tier.
# Usage (as root on Debian): ./scripts/test.sh [unit|netns|e2e ...]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
source scripts/node-toolchain.sh
node scripts/run-tests.mjs "$@"
