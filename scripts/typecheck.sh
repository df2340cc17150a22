#!/usr/bin/env bash
# mypy over the package as it imports (pathwatch.server, pathwatch.collector, …): the
# top-level folders are mapped into one package by the build backend, so mypy reads them
# through a tree of links laid out the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/typecheck
rm -rf "$tree"
mkdir -p "$tree/pathwatch"
cp pathwatch/__init__.py "$tree/pathwatch/"
for package in server collector web migrations; do
  ln -s "../../../$package" "$tree/pathwatch/$package"
done
cd "$tree"
MYPYPATH=. ../../.venv/bin/mypy --config-file ../../pyproject.toml -p pathwatch
