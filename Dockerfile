# warren: one image for `warren node` (DaemonSet) and `warren ca` (Deployment), see deploy/.
#   docker build -t ghcr.io/warren-mesh/warren:0.1.0 .

# Build: TypeScript → dist/, the N-API addon (src/native) and the static CNI plugin (src/cni/warren-cni.c) → build/Release.
# libnftables-dev: the header the addon types its dlopen()ed libnftables calls with (src/native/netns_nft.cc).
FROM node:26-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ libnftables-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# `npm ci` runs the package's own install script (node-gyp rebuild), which needs
# binding.gyp, the addon's C++ source and the plugin's C source; the rest comes later so
# that a code change does not invalidate the dependency layer. The plugin is linked
# statically: the agent copies it to the host's CNI bin dir, which needs nothing for it.
COPY package.json package-lock.json binding.gyp ./
COPY src/native/ src/native/
COPY src/cni/warren-cni.c src/cni/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src/ src/
RUN npm run build && npm prune --omit=dev --no-audit --no-fund
# The simulator (`warren sim`, `warren demo`: dist/src/sim, ~0.8 MB) and the two packages only
# it uses (node-forge for its API server's certificates, fast-json-patch for its PATCH
# handling, ~2 MB) are not needed by `warren node` or `warren ca`; in the image those two
# commands say so (ERR_NO_SIMULATOR). test/unit/cli/sim-boundary.test.ts runs this layout.
RUN rm -rf dist/src/sim node_modules/node-forge node_modules/fast-json-patch

# Runtime: Node.js plus the programs the agent runs (src/redirect/runner.ts):
# nft, iptables-restore/-save, ip, nsenter; nftables also brings libnftables1, which the
# addon loads to apply pod rules without a process (src/native/netns_nft.cc).
FROM node:26-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables iptables iproute2 util-linux ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
# The layout the code resolves at run time: bin/warren imports ../dist/src/cli/main.js,
# dist/src/native/netns-socket.js loads ../../../build/Release/warren_native.node,
# dist/src/cli/version.js reads ../../../package.json.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules/ node_modules/
COPY --from=build /app/dist/src/ dist/src/
COPY --from=build /app/build/Release/warren_native.node /app/build/Release/warren-cni build/Release/
COPY bin/ bin/
ENTRYPOINT ["/app/bin/warren"]
