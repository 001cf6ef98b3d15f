#!/usr/bin/env bash
# Draw the ratelimit workload's trace as an SVG: each second, what nginx
# answered (grey) and throttled (red), stacked; sluice's learnt rate
# (blue line, requests/s) and learnt limit on requests at once (orange,
# right axis) as `sluice status` showed them; nginx's rate (dashed).
#   bench/ratelimit-plot.sh TRACE PER-SECOND RATE
# TRACE lines: t_s limit rate; PER-SECOND lines: second answered throttled.
set -euo pipefail
awk -v rate="$3" '
FNR == 1 { file++ }
file == 1 { tt[++nt] = $1; lim[nt] = $2; rt[nt] = $3
            if ($1 > tmax) tmax = $1; if ($3 > ymax) ymax = $3
            if ($2 > cmax) cmax = $2; next }
file == 2 { sec[++ns] = $1; ok[ns] = $2; thr[ns] = $3
            if ($1 + 1 > tmax) tmax = $1 + 1
            if ($2 + $3 > ymax) ymax = $2 + $3 }
END {
    W = 760; H = 380; L = 60; R = 60; T = 50; B = 50
    pw = W - L - R; ph = H - T - B
    if (rate * 1.25 > ymax) ymax = rate * 1.25
    ymax = int(ymax / 50 + 1) * 50
    cmax = cmax < 5 ? 5 : int(cmax / 5 + 1) * 5
    if (tmax <= 0) tmax = 1
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H
    printf "<text x=\"10\" y=\"22\" font-size=\"15\">sluice adapting to nginx limit_req at %d r/s, nothing configured (bench/ratelimit.sh)</text>\n", rate
    printf "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", L, T, pw, ph
    bw = pw / tmax
    for (i = 1; i <= ns; i++) {
        x = L + sec[i] * bw
        h1 = ph * ok[i] / ymax; h2 = ph * thr[i] / ymax
        printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#cccccc\"/>\n", x + 1, T + ph - h1, bw - 2, h1
        if (thr[i] > 0)
            printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#d62728\"/>\n", x + 1, T + ph - h1 - h2, bw - 2, h2
    }
    y = T + ph - ph * rate / ymax
    printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#333\" stroke-dasharray=\"5,4\"/>\n", L, y, L + pw, y
    printf "<text x=\"%d\" y=\"%.1f\">nginx %d r/s</text>\n", L + 4, y - 4, rate
    pts = ""; cpts = ""
    for (i = 1; i <= nt; i++) {
        x = L + pw * tt[i] / tmax
        pts = pts sprintf("%.1f,%.1f ", x, T + ph - ph * rt[i] / ymax)
        cpts = cpts sprintf("%.1f,%.1f ", x, T + ph - ph * lim[i] / cmax)
    }
    printf "<polyline points=\"%s\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n", pts
    printf "<polyline points=\"%s\" fill=\"none\" stroke=\"#ff7f0e\" stroke-width=\"1.5\"/>\n", cpts
    for (v = 0; v <= ymax; v += 50)
        printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d</text>\n", L - 6, T + ph - ph * v / ymax + 4, v
    for (v = 0; v <= cmax; v += 5)
        printf "<text x=\"%d\" y=\"%.1f\" fill=\"#ff7f0e\">%d</text>\n", L + pw + 6, T + ph - ph * v / cmax + 4, v
    step = tmax > 30 ? 5 : tmax > 10 ? 2 : 1
    for (v = 0; v <= tmax; v += step)
        printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", L + pw * v / tmax, T + ph + 16, v
    printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">seconds</text>\n", L + pw / 2, T + ph + 34
    printf "<text x=\"%d\" y=\"%d\" fill=\"#1f77b4\">learnt rate (requests/s)</text>\n", L, T - 10
    printf "<text x=\"%d\" y=\"%d\" fill=\"#888\">answered/s</text>\n", L + 190, T - 10
    printf "<text x=\"%d\" y=\"%d\" fill=\"#d62728\">throttled/s</text>\n", L + 280, T - 10
    printf "<text x=\"%d\" y=\"%d\" fill=\"#ff7f0e\" text-anchor=\"end\">learnt limit at once (right axis)</text>\n", L + pw, T - 10
    print "</svg>"
}' "$1" "$2"
