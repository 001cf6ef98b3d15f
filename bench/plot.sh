#!/usr/bin/env bash
# Draw bench/results.json as an SVG bar chart: images/s per tool, one
# group of bars per workload (each group scaled to its own fastest tool,
# the figure printed on each bar; sluice in blue, sluice_base, BASE's
# sluice, in light blue). Usage: bench/plot.sh results.json
set -euo pipefail
tr '{' '\n' <"$1" | sed -n 's/.*"workload":"\([^"]*\)","tool":"\([^"]*\)","images_per_s":\([0-9.]*\).*/\1 \2 \3/p' |
awk '
{ w[NR] = $1; t[NR] = $2; v[NR] = $3
  if (!($1 in max) || $3 > max[$1]) max[$1] = $3
  if (!($1 in seen)) { seen[$1] = 1; groups[++ng] = $1 }
  per[$1]++ }
END {
    bar = 22; gap = 40; label = 130; width = 760
    y = 50
    for (g = 1; g <= ng; g++) height += per[groups[g]] * bar + gap
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", width, height + 60
    printf "<text x=\"10\" y=\"24\" font-size=\"16\">sluice and its peers: images/s per workload (bench/run.sh)</text>\n"
    for (g = 1; g <= ng; g++) {
        name = groups[g]
        printf "<text x=\"10\" y=\"%d\" font-weight=\"bold\">%s</text>\n", y + 14, name
        y += 20
        for (i = 1; i <= NR; i++) {
            if (w[i] != name) continue
            len = max[name] > 0 ? (width - label - 90) * v[i] / max[name] : 0
            color = t[i] == "sluice" ? "#1f77b4" : \
                t[i] == "sluice_base" ? "#9ecae1" : "#aaaaaa"
            printf "<text x=\"20\" y=\"%d\">%s</text>\n", y + 15, t[i]
            printf "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", label, y + 2, len, bar - 6, color
            printf "<text x=\"%.1f\" y=\"%d\">%.1f</text>\n", label + len + 6, y + 15, v[i]
            y += bar
        }
        y += gap - 20
    }
    print "</svg>"
}'
