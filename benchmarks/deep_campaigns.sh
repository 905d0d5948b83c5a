#!/usr/bin/env bash
# The README's deep campaigns: 10,000 spread seeds per committee size and vote
# routing, in chunks of 2,500 runs so they can span sessions. Chunk k of a campaign
# with base seed S runs seeds splitmix64(S + 2500k + i), i < 2500: together, exactly
# the seeds of one 10,000-run campaign from S. Finished chunks (their JSON exists in
# OUT) are skipped, so rerunning the script resumes where it stopped.
#   bash benchmarks/deep_campaigns.sh OUT [N ROUTING BASE]...
set -euo pipefail
out=${1:?usage: deep_campaigns.sh OUT [N ROUTING BASE]...}
shift
mkdir -p "$out"
specs=("$@")
if [ ${#specs[@]} -eq 0 ]; then  # the README's table: base 901000003 + k * 1000003
    specs=(4 broadcast 901000003 4 relay 902000006 7 broadcast 903000009
           7 relay 904000012 10 broadcast 905000015 10 relay 906000018)
fi
for ((s = 0; s < ${#specs[@]}; s += 3)); do
    n=${specs[s]} routing=${specs[s + 1]} base=${specs[s + 2]}
    for k in 0 1 2 3; do
        json="$out/n${n}_${routing}_chunk$k.json"
        [ -f "$json" ] && continue
        echo "n=$n $routing chunk $k (base $((base + k * 2500))) $(date +%T)"
        pot consensus simulate --validators "$n" --votes "$routing" --runs 2500 \
            --seed $((base + k * 2500)) --spread --jobs 2 --json-out "$json.tmp" \
            > "$out/n${n}_${routing}_chunk$k.log" 2>&1
        mv "$json.tmp" "$json"
    done
done
