#!/bin/sh
# Runs each cmocka test binary, prints its report, and ends with a one-line summary; non-zero exit if any
# binary failed. Run from the repository root (tests find their fixtures under tests/fixtures).
set -u
failed=""
n=0
for t in "$@"; do
    n=$((n + 1))
    echo "== $t"
    if ! "$t"; then failed="$failed $(basename "$t")"; fi
done
if [ -n "$failed" ]; then
    echo "FAILED test binaries:$failed"
    exit 1
fi
echo "all $n test binaries passed"
