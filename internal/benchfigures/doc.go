// Package benchfigures holds the checks of the benchmark figures' list,
// testbed/figures.txt: every figure a benchmark reports
// (b.ReportMetric with a snake_case name) is listed with its better
// direction, every listed figure is reported, and testbed/figures.sh keeps
// a repeated figure's worst value. It has no code of its own.
package benchfigures
