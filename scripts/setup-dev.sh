#!/usr/bin/env bash
# Everything the test suite needs on a fresh Debian machine, as root: the package with its dev extras
# (all SDKs, the GCS emulator, linters), the Docker engine, and the local base and runner images.
# Idempotent: a second run only checks. Used by .ci/run and by the README's test command.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
echo "[setup-dev] pip install -e '.[dev]'" >&2
"$PYTHON" -m pip install -q --disable-pip-version-check -e '.[dev]'
bash scripts/setup-docker.sh
# Headless Chromium for the report page's browser tests (tests/test_report_html.py): Debian's package,
# never a downloaded browser.
if [ ! -x /usr/bin/chromium ]; then
    echo "[setup-dev] apt-get install chromium" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
