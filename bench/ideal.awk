# The ideal schedule for a capped run, from the test origin's /_log: the
# time a zero-overhead client would take keeping all N slots busy and
# starting records in feed order, each taking the latency the origin
# served it (retries included, in the order they were served). Prints
# "ideal_ms actual_ms ratio", where actual is first start to last end.
#   awk -v N=20 -f bench/ideal.awk LOG
# LOG lines: n attempt start_ms end_ms latency_ms status bytes path
{
    n[NR] = $1
    attempt[NR] = $2
    lat[NR] = $5
    if (NR == 1 || $3 < first)
        first = $3
    if ($4 > last)
        last = $4
}
END {
    if (NR == 0) {
        print "0 0 0"
        exit
    }
    # Feed order: by record number, then attempt.
    for (i = 1; i <= NR; i++)
        order[i] = i
    for (i = 2; i <= NR; i++) {
        k = order[i]
        j = i - 1
        while (j >= 1 && (n[order[j]] > n[k] ||
                          (n[order[j]] == n[k] &&
                           attempt[order[j]] > attempt[k]))) {
            order[j + 1] = order[j]
            j--
        }
        order[j + 1] = k
    }
    for (s = 1; s <= N; s++)
        free_at[s] = 0
    ideal = 0
    for (i = 1; i <= NR; i++) {
        best = 1
        for (s = 2; s <= N; s++)
            if (free_at[s] < free_at[best])
                best = s
        free_at[best] += lat[order[i]]
        if (free_at[best] > ideal)
            ideal = free_at[best]
    }
    actual = last - first
    printf "%d %d %.3f\n", ideal, actual, (actual > 0 ? ideal / actual : 0)
}
