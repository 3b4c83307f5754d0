#!/usr/bin/env bash
# Runs every native Go fuzz target of the module for FUZZTIME each (default
# 5s), quietly. A failure that leaves a new input under testdata/fuzz is a
# real find: its output is shown and the run fails. One without is the
# fuzz engine itself: its deadline covers gathering the baseline coverage of
# the corpus, which on a loaded machine can take longer than FUZZTIME
# ("context deadline exceeded"). That target runs again once for 30s and
# fails only if it fails again.
set -uo pipefail
fuzztime=${FUZZTIME:-5s}
go=${GO:-go}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for pkg in $($go list ./...); do
	dir=$($go list -f '{{.Dir}}' "$pkg")
	for f in $($go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
		t=$fuzztime
		for try in 1 2; do
			if $go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg" >"$out" 2>&1; then
				break
			fi
			if [ "$try" = 2 ] || [ -n "$(git -C "$dir" status --porcelain -- "testdata/fuzz/$f" 2>/dev/null)" ]; then
				echo "fuzz: $pkg $f failed:"
				tail -n 40 "$out"
				exit 1
			fi
			echo "fuzz: $pkg $f failed without a new input ($(grep -m1 -o 'context deadline exceeded\|hung or terminated[^:]*' "$out" || echo engine)); running it again for 30s" >&2
			t=30s
		done
	done
done
