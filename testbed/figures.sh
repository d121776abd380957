#!/usr/bin/env bash
# Prints one name=value line per figure from `go test -bench` output.
# A benchmark reports a figure with b.ReportMetric(value, "figure_name"):
# every metric whose unit is a snake_case name (no '/') is a figure. When a
# figure is reported more than once, the last value wins.
set -euo pipefail
in=${1:--}
awk '
  /^Benchmark[^ \t]*[ \t]+[0-9]+[ \t]/ {
    for (i = 3; i < NF; i += 2) {
      unit = $(i + 1)
      if (unit ~ /^[a-z][a-z0-9_]*$/ && unit !~ /^(ns|B|allocs)\/op$/) { fig[unit] = $i; if (!(unit in order)) { order[unit] = ++n; names[n] = unit } }
    }
  }
  END {
    print "--- figures"
    for (k = 1; k <= n; k++) printf "%s=%s\n", names[k], fig[names[k]]
  }
' "$in"
