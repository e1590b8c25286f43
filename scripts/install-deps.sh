#!/usr/bin/env bash
# Installs the system packages warren's tests, benchmarks and simulator use.
# Idempotent; skips apt when everything is already there.
set -euo pipefail

PKGS=(iproute2 nftables iptables containernetworking-plugins socat util-linux procps make g++ python3 tcpdump openssl iperf3 stunnel4 libnghttp2-dev libnftables-dev libnetfilter-queue-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# `warren sim kubectl` runs the machine's kubectl; Debian's only where none is installed
# (it conflicts with the Cloud SDK one some images ship).
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
# Node.js: scripts/node-toolchain.sh fetches Node 26 with npm when the machine's node is
# older; a machine with neither gets Debian's npm (and its nodejs) just for that bootstrap.
command -v node >/dev/null 2>&1 || command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -eq 0 ]; then
  echo "system packages present: ${PKGS[*]}"
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "warren: missing system packages (${missing[*]}); run as root or: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
