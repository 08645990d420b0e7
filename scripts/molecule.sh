#!/usr/bin/env bash
# Runs every Molecule scenario (molecule test --all) in rootful Podman containers on an
# internal network in 198.18.0.0/15 with no route out. Run as root, after `make collection`.
# Installs podman, runc and mmdebstrap when missing and builds the base image once.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The scenarios' molecule.yml files name this network and fixed addresses inside it.
network=netmagic-molecule
subnet=198.18.42.0/24

collections="$repo/.build/collections"
if [ ! -d "$collections/ansible_collections/netmagic/netfilter" ]; then
  echo "netmagic.netfilter is not installed under $collections: run 'make collection' first" >&2
  exit 1
fi

missing=()
for package in podman runc mmdebstrap; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# Podman's defaults fail on this machine kind: the default ulimits are refused, crun does not
# accept the cgroup layout, and journald is not there for events.
state="$repo/.build/molecule"
mkdir -p "$state"
cat > "$state/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[network]
network_backend = "netavark"
default_subnet = "198.19.254.0/24"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$state/containers.conf"

"$repo/molecule/image/build.sh"

# Netavark turns the host's IPv4 forwarding on when it attaches a container to a bridge
# network; the host gets its own setting back at the end.
host_forwarding=$(cat /proc/sys/net/ipv4/ip_forward)

# Removing the network with -f also removes containers still attached to it, such as those
# of an interrupted run; only this script's scenarios use it.
clean_up() {
  if podman network exists "$network"; then
    podman network rm -f "$network" >/dev/null
  fi
  sysctl -qw net.ipv4.ip_forward="$host_forwarding"
}
clean_up
trap clean_up EXIT
podman network create --internal --disable-dns --subnet "$subnet" "$network" >/dev/null

export ANSIBLE_COLLECTIONS_PATH="$collections"
export PATH="$repo/.venv/bin:$PATH"
cd "$repo"
# Arguments pick scenarios (-s NAME); without, every scenario runs.
if [ $# -gt 0 ]; then molecule test "$@"; else molecule test --all; fi
