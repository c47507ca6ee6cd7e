#!/usr/bin/env bash
# The README's commands, verbatim, as a new user runs them: a clean copy of the committed tree, a fresh
# venv, pip's defaults (no config file, no local wheel folders: the newest torch and Triton arrive),
# each command timed. Writes benchmarks/results/fresh_install.{json,md} in this checkout.
#
#   bash benchmarks/fresh_install.sh [DATA]     # DATA holds test/Set5 and test/Set14 (default ../shared/data)
#   FRESH_WORK=/tmp/irkernels-fresh.X bash benchmarks/fresh_install.sh DATA train eval
#       re-time only the named steps, in that earlier run's venv and home, on the committed tree of
#       now (after the README changed those commands); the other rows are kept
#
# The wall-clock figures depend on the machine's load, so the load average is recorded beside each.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
data=$(cd "${1:-$repo/../shared/data}" && pwd) || { echo "no data folder: pass DATA (holding test/Set5, test/Set14)"; exit 2; }
shift $(( $# > 0 ? 1 : 0 ))
only=" $* "
work=${FRESH_WORK:-$(mktemp -d /tmp/irkernels-fresh.XXXXXX)}
rows=$work/rows.tsv
commit=$(git -C "$repo" rev-parse --short HEAD)
echo "working in $work on $commit"
rm -rf "$work/src"
git -C "$repo" archive HEAD | tar -x -C "$work" --one-top-level=src || exit 1
cd "$work/src" || exit 1
unset PIP_FIND_LINKS PIP_CONSTRAINT PIP_EXTRA_INDEX_URL PIP_INDEX_URL
export PIP_CONFIG_FILE=/dev/null PIP_NO_CACHE_DIR=1  # as on a machine that never downloaded torch
# a new user's home: no pre-trained networks cached from earlier runs (~/.cache/irkernels), no
# matplotlib or Triton caches
export HOME=$work/home XDG_CACHE_HOME=$work/home/.cache
unset IRKERNELS_CACHE TRITON_CACHE_DIR
mkdir -p "$HOME"
[ -x "$work/venv/bin/python" ] || python3 -m venv "$work/venv" || exit 1
. "$work/venv/bin/activate" || exit 1

# timed NAME CMD: run CMD (a shell line), append NAME, exit status, seconds, load before/after to the rows
timed() {
    local name=$1 line=$2 start load0 rc
    [ "$only" = "  " ] || [[ "$only" == *" $name "* ]] || return 0
    [ ! -f "$rows" ] || { grep -v "^$name	" "$rows" > "$rows.new"; mv "$rows.new" "$rows"; }
    load0=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s.%N)
    echo "=== $name: $line"
    bash -c "$line" > "$work/$name.log" 2>&1
    rc=$?
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$(echo "$(date +%s.%N) - $start" | bc)" "$load0" \
        "$(cut -d' ' -f1 /proc/loadavg)" "$line" "$commit" >> "$rows"
    tr "\r" "\n" < "$work/$name.log" | grep -v "^$" | tail -3
}

timed install "pip install ."
timed demo "python -m irkernels.pipeline"
timed test_command 'pip install -e ".[test]" && pytest'
# (a FRESH_WORK re-run needs no reinstall: the editable install points at $work/src, re-extracted above)
timed train "python -m irkernels.pipeline train --model edsr-tiny --scale 2 --steps 1000 --out runs/demo"
timed eval "python -m irkernels.pipeline eval --checkpoint runs/demo/model.safetensors --test $data/test/Set5 $data/test/Set14"
timed compare_tiny "python -m irkernels.pipeline compare --preset tiny --out runs/compare-tiny"
timed tripled "python -m irkernels.pipeline tripled --out runs/tripled"
timed tripled_cpu "python -m irkernels.pipeline tripled --task sr2 --feature-model edsr-tiny --pretrain-steps 1000 --vae-steps 0 --out runs/tripled-cpu"

python - "$rows" "$repo/benchmarks/results" "$work" "$data" <<'EOF'
import json, os, platform, sys, time
import torch, triton
rows_path, out, work, data = sys.argv[1:]
rows = []
for line in open(rows_path):
    name, rc, seconds, load0, load1, command, commit = line.rstrip("\n").split("\t")
    with open(os.path.join(work, name + ".log"), errors="replace") as fh:
        lines = [x.strip() for x in fh.read().replace("\r", "\n").splitlines()]
    # what the command said of its result: the last score next to a baseline, or pytest's summary
    said = [x.split(": ", 1)[-1] if x.startswith(("INFO", "WARNING")) else x for x in lines
            if "PSNR-Y" in x and ("bicubic" in x or "degraded input" in x) or x.startswith("=") and " passed" in x]
    rows.append({"step": name, "command": command.replace(data + "/", "DATA/"), "exit": int(rc), "seconds": round(float(seconds), 1),
                 "load_before": float(load0), "load_after": float(load1), "result": said[-1].strip("= ") if said else "", "commit": commit})
meta = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(), "torch": torch.__version__,
        "triton": triton.__version__, "cpus": os.cpu_count(), "pip": "no config file, no cache, no local wheels",
        "logs": work}
with open(os.path.join(out, "fresh_install.json"), "w") as fh:
    json.dump({"meta": meta, "rows": rows}, fh, indent=1)
def dur(s):
    return f"{int(s // 60)} min {int(s % 60):02d} s" if s >= 60 else f"{s:.0f} s"
lines = [f"# The README's commands on a fresh venv ({meta['date']})", "",
         f"Python {meta['python']}, torch {meta['torch']}, Triton {meta['triton']} (what pip brought), "
         f"{meta['cpus']} shared CPU cores, no GPU; pip with {meta['pip']}; a new user's home (nothing cached). "
         "Load average = the machine's, before → after each command (other jobs included); DATA = the folder "
         "holding the test sets.", "",
         "| command | exit | wall time | load | what it printed of its result | commit |", "|---|---|---|---|---|---|"]
lines += [f"| `{r['command']}` | {r['exit']} | {dur(r['seconds'])} | {r['load_before']:.1f} → {r['load_after']:.1f} "
          f"| {r['result']} | {r['commit']} |" for r in rows]
with open(os.path.join(out, "fresh_install.md"), "w") as fh:
    fh.write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
