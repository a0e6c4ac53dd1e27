#!/bin/sh
# `lucida` at the top of the portable archive: runs the bundle beside it, from any folder.
here=$(dirname "$(readlink -f "$0")")
exec "$here/lucida-app/lucida" "$@"
