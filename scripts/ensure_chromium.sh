#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver for the browser tests (pytest -m browser), once.
# Idempotent: does nothing when /usr/bin/chromium and /usr/bin/chromedriver are already there. A browser
# downloaded by a tool (Playwright, Selenium Manager) does not work on these machines; Debian's does.
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver
