#!/usr/bin/env bash
# The README's demo command: installs what is missing, then runs `warren demo`
# on the embedded simulator (as root). `./bin/warren sim down` removes it all.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh >/dev/null
exec ./bin/warren demo "$@"
