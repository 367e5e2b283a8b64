#!/usr/bin/env bash
# Install headless Chromium + chromedriver (Debian packages) and Selenium into .venv for the rating-page browser
# test. Idempotent: does nothing when everything is present. Exits 0 even when it cannot install, so `make test`
# goes on and the browser test skips with its own reason.
set -u
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"

have_browser() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }

if ! have_browser; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup_browser: installing chromium + chromium-driver with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null \
      || echo "setup_browser: apt-get could not install chromium; the browser test will skip" >&2
  else
    echo "setup_browser: chromium missing and apt-get unavailable (needs root); the browser test will skip" >&2
  fi
fi

if [ -x "$PY" ] && ! "$PY" -c "import selenium" >/dev/null 2>&1; then
  echo "setup_browser: installing selenium into $(dirname "$PY")" >&2
  "$PY" -m pip install -q "selenium>=4.20,<5" || echo "setup_browser: pip could not install selenium" >&2
fi

if have_browser; then echo "setup_browser: $(chromium --version 2>/dev/null)" >&2; fi
exit 0
