#!/usr/bin/env bash
# A pseud checkout for test/pseud-real.spec.ts (run it with PSEUD_DIR=<dir> npm test).
# pseud's code is never committed here; the spec patches a temporary copy for msgpack 1.0.
# Also needs: apt-get install -y python3-zmq python3-msgpack python3-zope.component (Debian's /usr/bin/python3).
set -euo pipefail
dir="${1:-/tmp/pseud-src}"
if [ -f "$dir/pseud/common.py" ]; then
  echo "pseud already in $dir"
else
  git clone --depth 1 https://github.com/ezeep/pseud.git "$dir"
fi
echo "run: PSEUD_DIR=$dir npm test"
