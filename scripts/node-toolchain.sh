# Sourced (bash) by the install, test, demo and CI scripts: puts a Node.js >= 24 first on
# PATH. warren runs on the Active LTS (Node 26); a machine whose node is older (Debian's
# or NodeSource's Node 20, end of life) bootstraps it from the npm registry, which ships
# Node as the package node-linux-<arch> (bin/node plus include/node with OpenSSL's
# headers), into .toolchain/ of this checkout. npm_config_nodedir points node-gyp at
# those headers, so `npm ci` builds the native addon offline against the Node that runs it.
# bin/warren prefers .toolchain's node the same way.
WARREN_NODE_VERSION=26.10.0
WARREN_NODE_MIN_MAJOR=24

warren_toolchain_setup() {
  local root toolchain arch pkg nodedir current major
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  toolchain="$root/.toolchain"
  current="$(node --version 2>/dev/null || true)"
  major="${current#v}"
  major="${major%%.*}"
  if [ ! -x "$toolchain/node_modules/.bin/node" ] && [ -n "$major" ] && [ "$major" -ge "$WARREN_NODE_MIN_MAJOR" ]; then
    return 0 # this node is new enough (e.g. the node:26 image); node-gyp finds its headers
  fi
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) echo "warren: no Node.js package for $(uname -m); install Node.js >= $WARREN_NODE_MIN_MAJOR" >&2; return 1 ;;
  esac
  pkg="node-linux-$arch"
  nodedir="$toolchain/node_modules/$pkg"
  if [ "$("$nodedir/bin/node" --version 2>/dev/null || true)" != "v$WARREN_NODE_VERSION" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "warren: node $current is older than $WARREN_NODE_MIN_MAJOR and there is no npm to fetch Node $WARREN_NODE_VERSION; install Node.js >= $WARREN_NODE_MIN_MAJOR" >&2
      return 1
    fi
    echo "warren: installing Node.js $WARREN_NODE_VERSION ($pkg from the npm registry) into $toolchain" >&2
    mkdir -p "$toolchain"
    npm install --prefix "$toolchain" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "$pkg@$WARREN_NODE_VERSION" >&2
  fi
  export PATH="$toolchain/node_modules/.bin:$PATH"
  export npm_config_nodedir="$nodedir"
}
warren_toolchain_setup
