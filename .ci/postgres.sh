#!/usr/bin/env bash
# PostgreSQL server binaries for tests/test_sweep_workers.py (two sweep workers sharing one study through a
# real server on 127.0.0.1). Debian's `postgresql` package; a no-op when its initdb is already there.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The package's post-install creates and starts a default cluster on port 5432; the test does not use it.
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
