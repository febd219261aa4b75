#!/bin/sh
# Builds web/dist (embedded in the gateway binary) from web/src with the exact versions of
# package-lock.json. Run it after changing web/src or the dependencies; commit web/dist.
# `.ci/run` runs it on a clean checkout and fails if web/dist changes: the committed bundle is
# what this script makes, byte for byte.
#
#   sh web/build.sh
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
mkdir -p dist
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# No source maps, no banner with a date or a path: the same input gives the same bytes.
node_modules/.bin/esbuild src/upload.js --bundle --format=esm --target=chrome111,firefox115,safari16 \
    --minify --legal-comments=eof --charset=utf8 --outfile="$out/upload.js" --log-level=warning
node_modules/.bin/esbuild src/console.js --bundle --format=esm --target=chrome111,firefox115,safari16 \
    --minify --legal-comments=eof --charset=utf8 --outfile="$out/console.js" --log-level=warning
cp src/app.css "$out/app.css"
# A file is replaced only when its bytes change: cargo sees a new modification time as a change
# to the binary's embedded assets and would compile the gateway again for nothing.
for f in upload.js console.js app.css; do
    cmp -s "$out/$f" "dist/$f" || cp "$out/$f" "dist/$f"
done
