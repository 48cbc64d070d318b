#!/usr/bin/env bash
# Download and unpack COCO train2014 (82,783 photos, 13 GB) into data/coco/train2014, the default
# training set (data=coco). Resumes an interrupted download and checks the archive's md5.
#   scripts/download_coco.sh [DEST]      DEST defaults to data/coco
set -euo pipefail

# COCO_URL / COCO_MD5 point it at a mirror (with that mirror's archive checksum).
URL="${COCO_URL:-http://images.cocodataset.org/zips/train2014.zip}"
MD5="${COCO_MD5:-0da8c0bd3d6becc4dcb32757491aca88}"
DEST="${1:-data/coco}"
ZIP="$DEST/train2014.zip"

mkdir -p "$DEST"
if [ -d "$DEST/train2014" ] && [ "$(find "$DEST/train2014" -name '*.jpg' | head -n 82783 | wc -l)" -eq 82783 ]; then
    echo "already there: $DEST/train2014"; exit 0
fi
command -v curl >/dev/null || { echo "error: curl is needed (apt-get install curl)" >&2; exit 1; }
command -v unzip >/dev/null || { echo "error: unzip is needed (apt-get install unzip)" >&2; exit 1; }

echo "downloading $URL -> $ZIP (resumes if interrupted)"
# -C - continues a partial file; an already complete file makes curl exit 33 (range not satisfiable).
curl -fL --retry 5 --retry-delay 10 -C - -o "$ZIP" "$URL" || [ $? -eq 33 ]

echo "checking md5"
echo "$MD5  $ZIP" | md5sum -c - || { echo "error: $ZIP is corrupt; delete it and run again" >&2; exit 1; }

echo "unpacking into $DEST"
unzip -q -n "$ZIP" -d "$DEST"
echo "done: $(find "$DEST/train2014" -name '*.jpg' | wc -l) photos in $DEST/train2014"
echo "the archive $ZIP can be deleted now"
