# shellcheck shell=bash
# Shared by scripts/sanity.sh and scripts/units.sh; source it, do not run it.
# ansible-test wants the collection at .../ansible_collections/netmagic/netfilter and lists
# its files through git; offline, it also needs a pip bootstrap it would otherwise download.

# Prints the Python version (X.Y) of the venv whose bin folder is $1.
venv_python_version() {
  "$1/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])'
}

# Puts the pip bootstrap that the ansible-test of venv $1 asks for into its cache. The script
# normally comes from Ansible's CI file server, which this network does not reach; the pip
# wheel from PyPI does the same job. The pip version is read from ansible-test itself, so each
# ansible-core release gets the one it pins (24.2 for 2.19, 25.2 for 2.21).
ensure_pip_bootstrap() {
  local venv_bin=$1 version pip_version cache bootstrap wheel
  version=$(venv_python_version "$venv_bin")
  pip_version=$("$venv_bin/python" -c "
from ansible_test._internal.python_requirements import get_venv_packages
class Python: version = '$version'
print(get_venv_packages(Python())['pip'])")
  cache=$HOME/.ansible/test/cache
  bootstrap=$cache/get_pip_${pip_version//./_}.py
  [ -f "$bootstrap" ] && return 0
  mkdir -p "$cache"
  "$venv_bin/pip" download -q --disable-pip-version-check --no-deps -d "$cache" "pip==$pip_version"
  wheel=$(ls "$cache"/pip-"$pip_version"-*.whl)
  # Written aside and moved: a concurrent run never sees half a script.
  cat > "$bootstrap.$$" <<PY
import sys
sys.path.insert(0, "$wheel")
from pip._internal.cli.main import main
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--ignore-installed", "$wheel"] + args))
PY
  mv "$bootstrap.$$" "$bootstrap"
}

# Copies the working tree's files (tracked and untracked, not ignored) into a fresh folder
# .build/ansible-test/<label>.XXXX/ansible_collections/netmagic/netfilter, makes it a git
# repository and prints its path. Each run gets its own copy, so runs from several shells do
# not delete each other's files; the caller removes "$(collection_copy_root PATH)".
collection_copy() {
  local label=$1 root dest
  mkdir -p .build/ansible-test
  root=$(mktemp -d "$PWD/.build/ansible-test/$label.XXXXXX")
  dest=$root/ansible_collections/netmagic/netfilter
  mkdir -p "$dest"
  local files=() file
  # Files deleted in the working tree but still in the index are left out.
  while IFS= read -r -d '' file; do
    [ -e "$file" ] && files+=("$file")
  done < <(git ls-files -z --cached --others --exclude-standard)
  cp --parents -t "$dest" "${files[@]}"
  (cd "$dest" && git init -q && git add -A)
  echo "$dest"
}

collection_copy_root() {
  dirname "$(dirname "$(dirname "$1")")"
}
