#!/usr/bin/env bash
# Installs what the web app (web/) needs: its npm packages, exactly as locked
# (npm ci), and Chromium for its end-to-end tests (Debian's package at
# /usr/bin/chromium, driven by playwright-core; no browser download).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "web-setup: '$1' is required but not installed" >&2; exit 1; }; }
need node
need npm

# vite 8 needs Node 20.19+ (or 22.12+).
node -e '
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (!((major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major > 22)) {
    console.error(`web-setup: Node ${process.versions.node} is too old; vite needs 20.19+ or 22.12+`);
    process.exit(1);
  }'

# npm packages: reinstalled only when package-lock.json changed.
stamp=web/node_modules/.web-setup-lock.sha256
want=$(sha256sum web/package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "web-setup: npm ci in web/"
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
else
  echo "web-setup: web/node_modules is up to date"
fi

# Chromium for the end-to-end tests (CHROMIUM_PATH overrides).
chromium=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  if [ -n "${CHROMIUM_PATH:-}" ]; then
    echo "web-setup: CHROMIUM_PATH=$CHROMIUM_PATH is not an executable" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "web-setup: $chromium is missing and there is no apt-get; install Chromium and set CHROMIUM_PATH" >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" != 0 ]; then need sudo; sudo=sudo; fi
  echo "web-setup: installing chromium (Debian package)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
echo "web-setup: $("$chromium" --version 2>/dev/null | head -n 1)"
