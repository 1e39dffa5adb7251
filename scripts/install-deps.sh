#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the benchmarks need, then the Node test
# harness from its committed lockfile. Safe to run again; needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates
  libh2o-dev libuv1-dev libjansson-dev libssl-dev
  libjose-dev libcurl4-openssl-dev
  libstemmer-dev
  libhiredis-dev
  libpq-dev
  libcmocka-dev
  redis-server postgresql nginx-light
  chromium fonts-dejavu-core
  nodejs npm
  clang-format valgrind procps
  clang libclang-rt-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from elsewhere on some machines: skip them if node and npm already work.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]}")
fi
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -f test/e2e/package-lock.json ]; then
  stamp=test/e2e/node_modules/.mcpgate-lock
  if [ ! -f "$stamp" ] || ! cmp -s test/e2e/package-lock.json "$stamp"; then
    echo "install-deps: npm ci (test/e2e)"
    (cd test/e2e && npm ci --no-audit --no-fund --loglevel=error)
    cp test/e2e/package-lock.json "$stamp"
  fi
fi
echo "install-deps: done"
