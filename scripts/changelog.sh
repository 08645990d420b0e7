#!/usr/bin/env bash
# Checks the changelog: fragments and changelogs/changelog.yaml are valid, and CHANGELOG.rst is
# what antsibull-changelog generates from them (run `antsibull-changelog generate` after editing
# changelog.yaml; `antsibull-changelog release` at a release).
set -euo pipefail
cd "$(dirname "$0")/.."
antsibull-changelog lint
antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
antsibull-changelog generate --output "$generated"
diff -u CHANGELOG.rst "$generated" || { echo "CHANGELOG.rst is out of date: run antsibull-changelog generate" >&2; exit 1; }
