#!/usr/bin/env bash
# Installs the Debian 12 packages deja builds and tests with. As root it runs apt-get itself;
# otherwise it prints the apt-get line to run and fails, so that nothing half-configures.
# Usage: scripts/install-deps.sh [extra-package ...]
set -euo pipefail
packages=(cmake ninja-build g++ pkg-config catch2 librapidcheck-dev libfmt-dev liburing-dev "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "deja needs these Debian packages: ${missing[*]}" >&2
  echo "run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "deja: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; }
