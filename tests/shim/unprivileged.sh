#!/bin/sh
# Runs the command as nobody (uid/gid 65534) when we are root (CI runs tests as root); as-is otherwise.
# The fixture tree must be readable by nobody (harness.py makes it 0755).
if [ "$(id -u)" = 0 ]; then
  exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
fi
exec "$@"
