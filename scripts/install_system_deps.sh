#!/usr/bin/env bash
# System packages the test suite drives: Debian's Chromium (browser test) and
# wrk (the load-test client). Installed only where we are root with apt-get;
# elsewhere the tests that need them say why they are skipped.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v wrk >/dev/null || missing+=(wrk)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "note: ${missing[*]} missing and not installable here; the tests that need them will be skipped" >&2
fi
