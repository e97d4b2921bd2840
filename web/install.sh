#!/bin/sh
# meson install: copy the built page (<builddir>/web) to DEST, under $DESTDIR.
# usage: install.sh BUILT DEST
set -eu
built=$1 dest="${DESTDIR:-}$2"
mkdir -p "$dest"
for d in js css vendor; do
    rm -rf "${dest:?}/$d"
    cp -R "$built/$d" "$dest/$d"
done
cp "$built/index.html" "$built/favicon.svg" "$dest/"
chmod -R u=rwX,go=rX "$dest"
echo "installed the console's page in $dest"
