#!/usr/bin/env bash
# Prints one name=value line per figure from `go test -bench` output.
# A benchmark reports a figure with b.ReportMetric(value, "figure_name"):
# every metric whose unit is a snake_case name (no '/', no '-') is a figure.
# testbed/figures.txt gives each figure its better direction (higher or
# lower); when a figure is reported more than once (several scenarios,
# repeated runs), the worst value is kept: the lowest of a "higher" figure,
# the highest of a "lower" one. A figure missing from the list is an error
# (exit status 1, after the figures): every figure needs its direction.
set -euo pipefail
in=${1:--}
list="$(dirname "$0")/figures.txt"
[[ -r $list ]] || { echo "figures.sh: cannot read $list" >&2; exit 2; }
awk -v list="$list" '
  BEGIN {
    while ((getline line < list) > 0) {
      if (line ~ /^[ \t]*(#|$)/) continue
      split(line, f, /[ \t]+/)
      if (f[2] != "higher" && f[2] != "lower") {
        printf "figures.sh: %s: %s: direction %s, want higher or lower\n", list, f[1], f[2] > "/dev/stderr"
        bad = 1
      }
      dir[f[1]] = f[2]
    }
    close(list)
  }
  /^Benchmark[^ \t]*[ \t]+[0-9]+[ \t]/ {
    for (i = 3; i < NF; i += 2) {
      unit = $(i + 1)
      if (unit !~ /^[a-z][a-z0-9_]*$/) continue
      if (!(unit in dir)) {
        if (!(unit in unknown)) { unknown[unit] = 1; printf "figures.sh: %s is not in %s: add it with its direction (higher or lower) and meaning\n", unit, list > "/dev/stderr" }
        bad = 1
        continue
      }
      v = $i + 0
      if (!(unit in fig)) { order[++n] = unit; fig[unit] = $i; continue }
      if ((dir[unit] == "higher" && v < fig[unit] + 0) || (dir[unit] == "lower" && v > fig[unit] + 0)) fig[unit] = $i
    }
  }
  END {
    print "--- figures"
    for (k = 1; k <= n; k++) printf "%s=%s\n", order[k], fig[order[k]]
    exit bad
  }
' "$in"
