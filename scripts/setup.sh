#!/usr/bin/env bash
# Set up everything singsong needs on a fresh Debian/Ubuntu machine: system packages and a
# virtual environment in .venv with the CPU build of torch. Safe to re-run: it skips what exists.
#   scripts/setup.sh            # inference + data, train, eval, hf, ray, app and dev extras
#   EXTRAS=data scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

EXTRAS="${EXTRAS:-data,train,eval,hf,ray,app,dev}"
PYTHON="${PYTHON:-python3}"
# chromium: the browser tests of the web app and the listening-study page (driven by Playwright).
APT_PACKAGES=(fluidsynth fluid-soundfont-gm flite espeak-ng ffmpeg chromium)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
# torch first and pinned: the CPU build of 2.13.0. The constraints file keeps every later install
# from replacing it with another build (a newer one would pull GBs of CUDA packages).
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  "${PIP[@]}" install torch==2.13.0
fi
"${PIP[@]}" install -c constraints.txt -e ".[${EXTRAS}]"
echo "setup: ready (.venv, extras: ${EXTRAS})"
