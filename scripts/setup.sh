#!/usr/bin/env bash
# Install what giaoban needs on a fresh Debian/Ubuntu machine (run as root or with sudo for apt):
# a Python virtual environment in .venv with the project and its test tools, and redis-server
# (used by the tests and by multi-node deployments; the embedded single-node store needs none),
# and Debian's chromium for the browser tests (driven by PyPI's playwright; never `playwright install`)
# and Debian's firefox-esr for the Firefox tests (driven over WebDriver BiDi; no geckodriver),
# and Debian's GStreamer with webrtcbin, x264enc and its Python bindings for the system python3
# (tests/interop: a WHIP publisher and WHEP viewer nobody here wrote, run as a subprocess).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi
APT=()
command -v redis-server >/dev/null || APT+=(redis-server)
[ -x /usr/bin/chromium ] || APT+=(chromium)
[ -x /usr/bin/firefox-esr ] || APT+=(firefox-esr)
gst_ready() {
  local name
  command -v gst-inspect-1.0 >/dev/null || return 1
  for name in webrtcbin nicesrc x264enc avdec_h264 vp8enc vp8dec opusenc rtph264pay videotestsrc; do
    gst-inspect-1.0 "$name" >/dev/null 2>&1 || return 1
  done
  /usr/bin/python3 -c 'import gi; gi.require_version("GstWebRTC", "1.0"); gi.require_version("GstSdp", "1.0"); gi.require_version("Nice", "0.1")' 2>/dev/null
}
gst_ready || APT+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice python3-gst-1.0 gir1.2-gst-plugins-bad-1.0 gir1.2-nice-0.1)
# baresip (pulls baresip-ffmpeg): a SIP video room system nobody here wrote, run headless by tests/sip (#14)
command -v baresip >/dev/null || APT+=(baresip)
# sipp (sip-tester): SIP load and malformed-message scenarios against the stack (tests/signaling/sip, loadtests/sip_cps.py);
# kamailio: the proxy/dispatcher in front of several media nodes (#14)
command -v sipp >/dev/null || APT+=(sip-tester)
[ -x /usr/sbin/kamailio ] || APT+=(kamailio)
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
