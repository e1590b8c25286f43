#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every tier.
# Usage (as root on Debian): ./scripts/test.sh [--unit-only] [unit|netns|e2e ...]
# Without root the netns and e2e tiers cannot run: the script then fails (exit 3)
# unless --unit-only says that the unit tier alone is what was meant.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
source scripts/node-toolchain.sh
node scripts/run-tests.mjs "$@"
