#!/usr/bin/env bash
# System packages the test suite drives: Debian's Chromium (browser test), wrk
# (the load-test client), the fonts the realistic acceptance set is drawn with
# (bench/acceptance_set.py lists which digit styles each provides) and, kept
# apart from those, the fonts the synthetic training digits are drawn with
# (bench/training_set.py; never a face of the acceptance set).
# Installed only where we are root with apt-get; elsewhere the tests that need
# them say why they are skipped.
set -euo pipefail
FONTS=(
  fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-urw-base35 fonts-go fonts-ebgaramond  # ordinary type
  fonts-comic-neue fonts-humor-sans fonts-dkg-handwriting fonts-breip fonts-bwht fonts-femkeklaver  # handwriting-like
  fonts-dancingscript
)
TRAINING_FONTS=(
  fonts-texgyre fonts-open-sans fonts-roboto-fontface fonts-lmodern fonts-sil-charis fonts-hack fonts-noto-mono  # type
  fonts-kaushanscript fonts-kristi fonts-lobster fonts-sjfonts fonts-tomsontalks  # handwriting-like
)  # fonts-levien-typoscript, also allowed, has no digits (0-9 are its missing-glyph box): left out
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v wrk >/dev/null || missing+=(wrk)
for font in "${FONTS[@]}" "${TRAINING_FONTS[@]}"; do
  dpkg-query -W -f='${Status}' "$font" 2>/dev/null | grep -q "install ok installed" || missing+=("$font")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "note: ${missing[*]} missing and not installable here; the tests that need them will be skipped" >&2
fi
