#!/usr/bin/env bash
# Runs the `sh` blocks of docs/writing-a-strategy.md literally, in order, in one shell, in a
# fresh directory, with PRODUCERD pointing at this checkout: the walkthrough is what CI
# tests. Needs the default ports 7380, 7381 and 7390 free (the dev NameServer takes a free
# port). Stops only the processes the walkthrough started (it kills its own $DEV by PID);
# on failure the dev log is printed and a dev still running is stopped by its PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$PWD"
DOC="$REPO/docs/writing-a-strategy.md"

work=$(mktemp -d)
script="$work/walkthrough.sh"
{
  echo 'set -euo pipefail'
  echo 'set -x'
  # Every ```sh block, verbatim.
  awk '/^```sh$/ {inblock=1; next} /^```$/ {inblock=0; next} inblock {print}' "$DOC"
} >"$script"

cleanup() {
  status=$?
  if [ -f "$work/devpid" ]; then kill -TERM "$(cat "$work/devpid")" 2>/dev/null || true; fi
  if [ $status -ne 0 ] && [ -f "$work/fastest/dev.log" ]; then cat "$work/fastest/dev.log" >&2; fi
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT

# Record the dev daemon's PID as soon as the walkthrough starts it, so a failure
# half-way stops it.
sed -i 's/^DEV=\$!$/DEV=$!; echo "$DEV" >"'"${work//\//\\/}"'\/devpid"/' "$script"
(cd "$work" && PRODUCERD="$REPO" bash "$script")
rm -f "$work/devpid"
echo "walkthrough commands: ok"
