#!/bin/sh
# meson install: the example configuration as DEST (<sysconfdir>/cordon/cordond.conf),
# under $DESTDIR, unless a file is there already: an edited configuration is never
# overwritten (the example is also in <datadir>/doc/cordon/examples/). Mode 0640:
# the daemons' user reads it through its group, root:cordon. A package build
# (DESTDIR set) leaves the group to the package's postinst; an install as root
# onto this system sets it when the group cordon exists (systemd-sysusers makes it).
# usage: install.sh EXAMPLE DEST
set -eu
src=$1 dest="${DESTDIR:-}$2"
if [ -e "$dest" ]; then
    echo "kept $dest (not overwritten; the example is $src)"
    exit 0
fi
mkdir -p "$(dirname "$dest")"
cp "$src" "$dest"
chmod 0640 "$dest"
if [ -z "${DESTDIR:-}" ] && [ "$(id -u)" = 0 ] && getent group cordon >/dev/null; then
    chgrp cordon "$dest"
fi
echo "installed the example configuration as $dest"
