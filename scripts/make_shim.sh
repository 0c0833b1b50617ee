#!/usr/bin/env bash
# make_shim.sh SHIM_DIR: make this checkout importable as the installed `coohoi` package without installing it.
# Builds SHIM_DIR/coohoi from symlinks, laid out as setup.py installs it: the checkout's coohoi/ entries, plus envs/,
# agents/, cfg/ and assets/ as coohoi.envs, coohoi.agents, coohoi.cfg and coohoi.assets. Put SHIM_DIR first on
# PYTHONPATH and start Python with -P, so that a checkout in the working directory does not shadow it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shim=${1:?usage: make_shim.sh SHIM_DIR}
rm -rf "$shim" && mkdir -p "$shim/coohoi"
for entry in "$repo"/coohoi/*; do
  case "$(basename "$entry")" in __pycache__) ;; *) ln -s "$entry" "$shim/coohoi/" ;; esac
done
for top in envs agents cfg assets; do ln -s "$repo/$top" "$shim/coohoi/$top"; done
