#!/usr/bin/env bash
# Install what the browser end-to-end test (tests/e2e) needs: Debian's chromium and the
# Playwright Python driver. Idempotent: does nothing when both are present.
# Never runs `playwright install` (no browser downloads from outside the Debian archive).
# Exits 0 even when the browser cannot be installed (no root, no apt): the e2e test then
# skips itself with a clear message.
set -u
VENV_PY="${VENV_PY:-.venv/bin/python}"

if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""
        if [ "$(id -u)" -ne 0 ]; then
            if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
                echo "install_browser: not root and no sudo: chromium not installed, the e2e test will be skipped" >&2
                SUDO="skip"
            fi
        fi
        if [ "$SUDO" != "skip" ]; then
            export DEBIAN_FRONTEND=noninteractive
            $SUDO apt-get update -qq >/dev/null \
                && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null \
                || echo "install_browser: apt-get install chromium failed, the e2e test will be skipped" >&2
        fi
    else
        echo "install_browser: no apt-get: chromium not installed, the e2e test will be skipped" >&2
    fi
fi

if [ -x "$VENV_PY" ] && ! "$VENV_PY" -c "import playwright" >/dev/null 2>&1; then
    "$VENV_PY" -m pip install -q "playwright>=1.45" \
        || echo "install_browser: pip install playwright failed, the e2e test will be skipped" >&2
fi
exit 0
