#!/usr/bin/env bash
# System packages the test suite drives: Debian's Chromium for the browser test.
# Installed only where we are root with apt-get; elsewhere the browser test
# says why it is skipped.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "note: /usr/bin/chromium is missing and cannot be installed here; the browser test will be skipped" >&2
fi
