#!/bin/sh
# install-config.sh SRC DEST - meson install script: install the example
# configuration SRC as DEST (under $DESTDIR) unless a file is there
# already; an administrator's configuration is never overwritten.
set -eu
src=$1
dest=${DESTDIR:-}$2
if [ -e "$dest" ]; then
	echo "secretfs: keeping the existing $dest"
	exit 0
fi
install -D -m 0644 "$src" "$dest"
echo "secretfs: installed the example configuration as $dest"
