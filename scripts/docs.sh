#!/usr/bin/env bash
# Builds the documentation site into docs/build/html: the reference that antsibull-docs
# generates from the installed collection (modules, connection plugin, roles from their
# argument specs) and the hand-written Markdown pages of docs/, with Sphinx (docs/site holds
# its configuration and front page). `make docs` installs the tools and the collection first.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS_BIN=${DOCS_BIN:-$PWD/.build/venv-docs/bin}
# antsibull-docs asks the ansible-doc of this venv about the collection installed here.
export PATH=$DOCS_BIN:$PATH
export ANSIBLE_COLLECTIONS_PATH=${ANSIBLE_COLLECTIONS_PATH:-$PWD/.build/collections}

mkdir -p .build
source=$(mktemp -d "$PWD/.build/docs-src.XXXXXX")
trap 'rm -rf "$source"' EXIT
chmod 755 "$source"  # antsibull-docs refuses a destination others can write to

cp docs/site/index.rst docs/*.md "$source"/
# Pictures the pages show live in folders next to them (docs/performance/*.png).
for folder in docs/*/; do
  case $folder in docs/site/|docs/build/) ;; *) cp -r "$folder" "$source"/ ;; esac
done
antsibull-docs --config-file docs/site/antsibull-docs.cfg collection --use-current \
  --dest-dir "$source" netmagic.netfilter
rm -rf docs/build
sphinx-build -q -b html -W --keep-going -c docs/site "$source" docs/build/html
echo "docs/build/html/index.html"
