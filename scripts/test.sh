#!/usr/bin/env bash
# The test command (README, .ci/run): the whole suite on 3 xdist workers (most tests wait on Docker,
# subprocesses and emulators, so 3 workers keep 2 cores busy). Tests that failed are run once more,
# alone on 2 workers: on a loaded 2-core machine a few Docker and timing tests can lose a race. The
# first run's failures stay printed above the retry; a test that fails twice fails the command.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 -m pytest tests -n 3 "$@"
rc=$?
if [ "$rc" -eq 1 ]; then
  echo "[test] some tests failed; running the failed ones once more (a test that fails twice fails)" >&2
  python3 -m pytest tests -n 2 --last-failed --last-failed-no-failures none "$@"
  rc=$?
fi
exit "$rc"
