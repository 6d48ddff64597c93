#!/bin/sh
# The mixed-language convention: each submission folder has a run.sh that builds (if
# needed) and starts the program, so one batch template fits every language:
#   lab-grade batch submissions/ --run 'sh {dir}/run.sh {port}'
# The grader runs it in a read-only copy of the folder: build into $TMPDIR, never here.
set -e
here="$(cd "$(dirname "$0")" && pwd)"
cc -O2 -o "$TMPDIR/server" "$here/server.c"
exec "$TMPDIR/server" "$@"
