#!/usr/bin/env bash
# System packages the test suite drives: Debian's Chromium (browser test), wrk
# (the load-test client) and the fonts the realistic acceptance set is drawn
# with (bench/acceptance_set.py lists which digit styles each provides).
# Installed only where we are root with apt-get; elsewhere the tests that need
# them say why they are skipped.
set -euo pipefail
FONTS=(
  fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-urw-base35 fonts-go fonts-ebgaramond  # ordinary type
  fonts-comic-neue fonts-humor-sans fonts-dkg-handwriting fonts-breip fonts-bwht fonts-femkeklaver  # handwriting-like
  fonts-dancingscript
)
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v wrk >/dev/null || missing+=(wrk)
for font in "${FONTS[@]}"; do
  dpkg-query -W -f='${Status}' "$font" 2>/dev/null | grep -q "install ok installed" || missing+=("$font")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "note: ${missing[*]} missing and not installable here; the tests that need them will be skipped" >&2
fi
