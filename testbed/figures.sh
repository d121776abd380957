#!/usr/bin/env bash
# Prints one name=value line per figure from `go test -bench` output.
# A benchmark reports a figure with b.ReportMetric(value, "figure_name"):
# every metric whose unit is a snake_case name (no '/', no '-') is a figure.
# When a figure is reported more than once (several scenarios measure it),
# errors, offsets and times (names ending _pct, _ms or _s: larger is worse)
# keep the largest value; any other figure keeps the last.
set -euo pipefail
in=${1:--}
awk '
  /^Benchmark[^ \t]*[ \t]+[0-9]+[ \t]/ {
    for (i = 3; i < NF; i += 2) {
      unit = $(i + 1)
      if (unit !~ /^[a-z][a-z0-9_]*$/) continue
      v = $i + 0
      if (!(unit in order)) { order[unit] = ++n; names[n] = unit; fig[unit] = $i; continue }
      if (unit ~ /_(pct|ms|s)$/) { if (v > fig[unit] + 0) fig[unit] = $i } else fig[unit] = $i
    }
  }
  END {
    print "--- figures"
    for (k = 1; k <= n; k++) printf "%s=%s\n", names[k], fig[names[k]]
  }
' "$in"
