#!/usr/bin/env bash
# Runs the unit tests (tests/unit) with ansible-test units, in a venv ansible-test makes with
# its own test requirements, on a copy of the collection laid out as
# ansible_collections/netmagic/netfilter. VENV_BIN picks the venv (and so the ansible-core and
# Python) to test with; extra arguments go to ansible-test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/ansible-test.sh
VENV_BIN=${VENV_BIN:-$PWD/.venv/bin}

ensure_pip_bootstrap "$VENV_BIN"
dest=$(collection_copy units)
trap 'rm -rf "$(collection_copy_root "$dest")"' EXIT
cd "$dest"
"$VENV_BIN/ansible-test" units --python "$(venv_python_version "$VENV_BIN")" --venv "$@"
