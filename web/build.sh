#!/bin/sh
# Build the console's page into OUT (meson: <builddir>/web): its own files,
# and uPlot from npm as web/package-lock.json pins it. npm works in a copy
# under the build dir, so the source tree stays clean; after the first run
# npm's cache makes it work offline.
# usage: build.sh SRCDIR OUT STAMP
set -eu
src=$1 out=$2 stamp=$3
work="$out.npm"
mkdir -p "$work" "$out/js" "$out/css" "$out/vendor"
cp "$src/package.json" "$src/package-lock.json" "$work/"
if ! [ -f "$work/node_modules/uplot/dist/uPlot.iife.min.js" ] ||
   ! cmp -s "$src/package-lock.json" "$work/node_modules/.package-lock.json.src"; then
    (cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error)
    cp "$src/package-lock.json" "$work/node_modules/.package-lock.json.src"
fi
cp "$src/index.html" "$src/favicon.svg" "$out/"
cp "$src"/js/*.js "$out/js/"
cp "$src"/css/*.css "$out/css/"
cp "$work/node_modules/uplot/dist/uPlot.iife.min.js" "$work/node_modules/uplot/dist/uPlot.min.css" \
   "$out/vendor/"
cp "$work/node_modules/uplot/LICENSE" "$out/vendor/uPlot.LICENSE"
touch "$stamp"
