#!/usr/bin/env bash
# System packages the tests need: Debian's chromium for the browser tests
# (Playwright's own browser download cannot work on these machines).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "chromium is missing: install Debian's 'chromium' package (browser tests need /usr/bin/chromium)" >&2
  exit 1
fi
