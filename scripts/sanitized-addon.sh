#!/usr/bin/env bash
# Builds the addon with AddressSanitizer + UndefinedBehaviorSanitizer into
# build-sanitized/ (the normal build/ stays as it is) and runs a command with
# it: `scripts/sanitized-addon.sh node --test dist/test/unit/native/...`.
#
# The recipe: ASan must be the first library in the process, and node is not
# linked against it, so libasan is LD_PRELOADed; WARREN_NATIVE_ADDON points
# the loader (src/native/netns-socket.ts) at the sanitized build. Leak
# detection is off: node itself keeps allocations to exit; leaked descriptors
# are counted by the tests instead. Any sanitizer report aborts the process.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build-sanitized
if [ ! -f "$out/warren_native.node" ] || [ -n "$(find src/native binding.gyp -newer "$out/warren_native.node" -print -quit)" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/src"
  cp -r binding.gyp "$work/"
  cp -r src/native "$work/src/"
  ln -s "$PWD/node_modules" "$work/node_modules"
  gyp=$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js
  nodedir=$(npm config get nodedir 2>/dev/null | grep -v '^undefined$' || true)
  # Only the addon: binding.gyp's other target (the CNI plugin) is not sanitized here.
  if ! (cd "$work" && WARREN_SANITIZE=1 node "$gyp" configure ${nodedir:+--nodedir="$nodedir"} && make -C build BUILDTYPE=Release -j2 warren_native) >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    exit 1
  fi
  mkdir -p "$out"
  cp "$work/build/Release/warren_native.node" "$out/"
fi
[ "$#" -gt 0 ] || exit 0
asan=$(gcc -print-file-name=libasan.so)
export LD_PRELOAD="$asan"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_odr_violation=0:allow_user_segv_handler=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export WARREN_NATIVE_ADDON="$PWD/$out/warren_native.node"
exec "$@"
