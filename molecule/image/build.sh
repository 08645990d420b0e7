#!/usr/bin/env bash
# Builds the images of the Molecule scenarios once. No image registry is reachable, so each
# root file system is bootstrapped with mmdebstrap from this machine's own apt mirror and
# imported into rootful Podman. An image that already exists is left alone.
#   localhost/netmagic-molecule:bookworm          runs `sleep infinity` (or the scenario's command)
#   localhost/netmagic-molecule-systemd:bookworm  the same with systemd as PID 1, for services
set -euo pipefail

suite=bookworm
# python3 runs the Ansible modules; the rest are the tools the scenarios and tests use
# (nftables for the scenario that runs the roles with engine nftables).
packages=python3,iptables,nftables,iproute2,procps,tcpdump,curl,netcat-openbsd,iputils-ping,ca-certificates

# The mirror is read at run time so that no host name is written into the repository.
sources=/etc/apt/sources.list.d/debian.sources
if [ -r "$sources" ]; then
  mirror=$(awk '$1 == "URIs:" { print $2; exit }' "$sources")
else
  mirror=$(awk '$1 == "deb" { print ($2 ~ /^\[/ ? $3 : $2); exit }' /etc/apt/sources.list)
fi
if [ -z "${mirror:-}" ]; then
  echo "no Debian mirror found in $sources or /etc/apt/sources.list" >&2
  exit 1
fi

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

# build IMAGE EXTRA_PACKAGES CMD_JSON
build() {
  local image=$1 extra=$2 cmd=$3
  if podman image exists "$image"; then
    echo "image $image already present"
    return
  fi
  mmdebstrap --quiet --variant=minbase --include="$packages$extra" --format=tar \
    "$suite" "$workdir/rootfs.tar" "$mirror"
  podman import --quiet --change "CMD $cmd" "$workdir/rootfs.tar" "$image" >/dev/null
  rm -f "$workdir/rootfs.tar"
  echo "image $image built"
}

build localhost/netmagic-molecule:bookworm "" '["sleep", "infinity"]'
build localhost/netmagic-molecule-systemd:bookworm ",systemd,systemd-sysv,dbus" '["/sbin/init"]'
