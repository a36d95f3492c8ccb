#!/usr/bin/env bash
# Install what giaoban needs on a fresh Debian/Ubuntu machine (run as root or with sudo for apt):
# a Python virtual environment in .venv with the project and its test tools, and redis-server
# (used by the tests and by multi-node deployments; the embedded single-node store needs none),
# and Debian's chromium for the browser tests (driven by PyPI's playwright; never `playwright install`)
# and Debian's firefox-esr for the Firefox tests (driven over WebDriver BiDi; no geckodriver).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
APT=()
command -v redis-server >/dev/null || APT+=(redis-server)
[ -x /usr/bin/chromium ] || APT+=(chromium)
[ -x /usr/bin/firefox-esr ] || APT+=(firefox-esr)
if [ ${#APT[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${APT[@]}" >/dev/null
fi
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
echo "setup done: $(.venv/bin/python --version), $(redis-server --version | cut -d' ' -f1-3)"
