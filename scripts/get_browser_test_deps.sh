#!/usr/bin/env bash
# What the browser test (tests/test_export.py, format=web) needs beyond pip: Chromium (Debian's package,
# when this runs as root with apt) and onnxruntime-web from npm, unpacked into .cache/. Without them
# that test skips and says why.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(python -c "from fststyle.exporters.web import ORT_WEB_VERSION; print(ORT_WEB_VERSION)")
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/dev/null
    else
        echo "no Chromium, and no root apt to install it: the browser test will skip" >&2
    fi
fi
target=.cache/onnxruntime-web-$version
if [ ! -f "$target/dist/ort.all.min.js" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack -q "onnxruntime-web@$version" >/dev/null && tar xzf "onnxruntime-web-$version.tgz")
    mkdir -p .cache && rm -rf "$target" && mv "$tmp/package" "$target" && rm -rf "$tmp"
fi
echo "browser test: $(command -v chromium || command -v chromium-browser || echo 'no Chromium'), onnxruntime-web in $target"
