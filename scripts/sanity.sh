#!/usr/bin/env bash
# Runs ansible-test sanity on a copy of the collection laid out as ansible_collections/netmagic/netfilter.
# ansible-test bootstraps pip in its test venvs with a script it downloads from a host this
# network does not reach; the same bootstrap is made here from the pip wheel on PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_BIN=${VENV_BIN:-$PWD/.venv/bin}
PYTHON_VERSION=$("$VENV_BIN/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PIP_VERSION=$("$VENV_BIN/python" -c "
from ansible_test._internal.python_requirements import get_venv_packages
class Python: version = '$PYTHON_VERSION'
print(get_venv_packages(Python())['pip'])")
CACHE=$HOME/.ansible/test/cache
BOOTSTRAP=$CACHE/get_pip_${PIP_VERSION//./_}.py

if [ ! -f "$BOOTSTRAP" ]; then
  mkdir -p "$CACHE"
  "$VENV_BIN/pip" download -q --disable-pip-version-check --no-deps -d "$CACHE" "pip==$PIP_VERSION"
  wheel=$(ls "$CACHE"/pip-"$PIP_VERSION"-*.whl)
  cat > "$BOOTSTRAP" <<PY
import sys
sys.path.insert(0, "$wheel")
from pip._internal.cli.main import main
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--ignore-installed", "$wheel"] + args))
PY
fi

DEST=.build/sanity/ansible_collections/netmagic/netfilter
rm -rf .build/sanity
mkdir -p "$DEST"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$DEST"
cd "$DEST"
# ansible-test lists the files through git; this copy sits in an ignored folder of the project.
git init -q && git add -A
"$VENV_BIN/ansible-test" sanity --python "$PYTHON_VERSION" --venv "$@"
