#!/usr/bin/env bash
# Install what the real-browser test (tests/browser/) needs: Debian's Chromium and Playwright for
# Python. Safe to run again; it only installs what is missing.
#
#   .ci/install-browser.sh [VENV]      # VENV defaults to .venv
#
# Never run `playwright install`: the test drives /usr/bin/chromium, not a downloaded browser.
set -euo pipefail

venv="${1:-.venv}"
python="$venv/bin/python"
if [ ! -x "$python" ]; then
    echo "install-browser.sh: no Python at $python (create the venv first, or pass its path)" >&2
    exit 1
fi

if [ ! -x /usr/bin/chromium ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    # Try without refreshing the package lists first; refresh only when that fails.
    $sudo apt-get install -y chromium || { $sudo apt-get update && $sudo apt-get install -y chromium; }
fi

if ! "$python" -c "import playwright.sync_api" 2>/dev/null; then
    "$python" -m pip install playwright
fi

/usr/bin/chromium --version
"$python" -c "from importlib.metadata import version; print('playwright', version('playwright'))"
