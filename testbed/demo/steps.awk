#!/usr/bin/awk -f
# Turns Earshot's text log into one line per pipeline step for the demo.
# Reads slog's text format: time=... level=... msg="..." key=value ...
function field(name,   re, m) {
  re = name "=(\"[^\"]*\"|[^ ]*)"
  if (match($0, re)) { m = substr($0, RSTART + length(name) + 1, RLENGTH - length(name) - 1); gsub(/^"|"$/, "", m); return m }
  return ""
}
{
  msg = field("msg"); lvl = field("level")
  if (msg == "") next
  t = substr(field("time"), 12, 8)
  extra = ""
  n = split("room speaker track seq seconds text category severity rule error reason", keys, " ")
  for (i = 1; i <= n; i++) {
    v = field(keys[i])
    # Pseudonyms are long; their first characters tell them apart here.
    if (v ~ /^([rp][0-9]+|trk|ses)_/) v = substr(v, 1, 10) "…"
    if (v != "") extra = extra " " keys[i] "=" v
  }
  if (lvl == "ERROR" || lvl == "WARN") printf "  %s %-5s %s%s\n", t, lvl, msg, extra
  else printf "  %s %s%s\n", t, msg, extra
  fflush()
}
