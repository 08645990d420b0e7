#!/usr/bin/env bash
# Sanity and unit tests (ansible-test) on each supported ansible-core release, on the Python it
# is tested with:
#   2.19 on Python 3.11 (.venv, from requirements/dev.txt)
#   2.20 on Python 3.12 and 2.21 on Python 3.13 (venvs .build/venv-core2.20 and
#   .build/venv-core2.21 from requirements/core2.XX.txt; the Python comes from pyenv, since
#   ansible-core 2.20 and later need a newer Python than Debian 12's 3.11).
# Every row runs even when one fails; a summary with times ends the output.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=("2.19 3.11" "2.20 3.12" "2.21 3.13")

# An interpreter for Python X.Y: the newest X.Y that pyenv holds, else one on PATH. (pyenv's
# shims are on PATH too, but fail for versions that are not selected: each is tried.)
find_python() {
  local version=$1 candidate found=
  if command -v pyenv >/dev/null; then
    for candidate in "$(pyenv root)/versions/$version".*/bin/"python$version"; do
      [ -x "$candidate" ] && found=$candidate
    done
  fi
  if [ -z "$found" ] && "python$version" -c '' 2>/dev/null; then
    found=$(command -v "python$version")
  fi
  [ -n "$found" ] || { echo "no Python $version in pyenv or on PATH" >&2; return 1; }
  echo "$found"
}

# The bin folder of the venv for ansible-core X.Y, made (again) when its requirements changed.
venv_for() {
  local core=$1 python=$2 venv requirements interpreter
  if [ "$core" = 2.19 ]; then
    echo "$PWD/.venv/bin"  # the project's venv, pinned by requirements/dev.txt
    return
  fi
  venv=$PWD/.build/venv-core$core
  requirements=requirements/core$core.txt
  if [ ! -f "$venv/.installed" ] || [ "$requirements" -nt "$venv/.installed" ]; then
    rm -rf "$venv"
    interpreter=$(find_python "$python") || return 1
    "$interpreter" -m venv "$venv" || return 1
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2 || return 1
    touch "$venv/.installed"
  fi
  echo "$venv/bin"
}

summary=()
failed=0
for row in "${ROWS[@]}"; do
  read -r core python <<<"$row"
  if ! bin=$(venv_for "$core" "$python"); then
    summary+=("ansible-core $core, Python $python: no venv")
    failed=1
    continue
  fi
  for suite in sanity units; do
    echo "=== ansible-core $core, Python $python: $suite"
    started=$SECONDS
    if VENV_BIN=$bin "./scripts/$suite.sh"; then result=passed; else result=FAILED; failed=1; fi
    summary+=("$(printf '%-18s %-12s %-7s %-6s %4ds' "ansible-core $core" "Python $python" "$suite" "$result" $((SECONDS - started)))")
  done
done
echo "=== version matrix"
printf '%s\n' "${summary[@]}"
exit $failed
