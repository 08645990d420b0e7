#!/usr/bin/env bash
# Installs the Debian packages the tests and the lab need; skips apt when all are present.
set -euo pipefail
# gcc and python3-dev build python-iptables (source-only on PyPI) into the venv; wrk loads the
# collector's capture in the packet tests.
packages=(iptables nftables iproute2 tcpdump tshark conntrack wrk iputils-arping python3 python3-venv python3-dev gcc curl make)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
