#!/usr/bin/env bash
# Builds the base image of the Molecule scenarios once. No image registry is reachable, so
# the root file system is bootstrapped with mmdebstrap from this machine's own apt mirror
# and imported into rootful Podman. Does nothing when the image already exists.
set -euo pipefail

image=${NETMAGIC_MOLECULE_IMAGE:-localhost/netmagic-molecule:bookworm}
suite=bookworm
# python3 runs the Ansible modules; the rest are the tools the scenarios and tests use.
packages=python3,iptables,iproute2,procps,tcpdump,curl,netcat-openbsd,iputils-ping,ca-certificates

if podman image exists "$image"; then
  echo "image $image already present"
  exit 0
fi

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

mmdebstrap --quiet --variant=minbase --include="$packages" --format=tar \
  "$suite" "$workdir/rootfs.tar" "$mirror"
podman import --change 'CMD ["sleep", "infinity"]' "$workdir/rootfs.tar" "$image"
echo "image $image built"
