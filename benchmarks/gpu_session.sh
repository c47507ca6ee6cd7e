#!/usr/bin/env bash
# Run on the GPU machine (the `device` tool), from the repo root, one stage per call (each < 10 min):
#
#   bash benchmarks/gpu_session.sh kernels   # CUDA tests + ncfd / rlff / kmeans benchmarks (≤ 8 min)
#   bash benchmarks/gpu_session.sh idc       # IDC ms per instance-iteration, batching 1/4/16, fused vs reference ops
#   bash benchmarks/gpu_session.sh train     # EDSR-baseline x4 on CBSD432 -> Set5/Set14, accumulation 1/4/8
#   bash benchmarks/gpu_session.sh idc_quality | tripled   # experiments on CBSD432 -> Set5/Set14
#   bash benchmarks/gpu_session.sh check     # here, before spending device time: every stage's prerequisites
#
# Preparation on the development machine (see docs/gpu.md): `.data/` = a copy of ../shared/data and
# `.whl/` = wheels the device lacks (diffusers + importlib_metadata, flash-kmeans,
# fast-pytorch-kmeans), both listed in .git/info/exclude and named in the call's `carry`.
# Each stage first checks what it needs and stops within seconds with one line "gpu_session STAGE: ..."
# (exit 2) if something is missing. Everything the stage produced comes back as
# $OUT/results-STAGE.tgz (benchmarks/results + logs).
set -uo pipefail
stages="kernels idc train idc_quality tripled"
stage=${1:-}
start=$SECONDS

fail() { echo "gpu_session $stage: $*" >&2; exit 2; }

# What each stage needs besides a CUDA GPU: data folders, and Python modules with the wheel that brings them.
data_dirs() { case $1 in train | idc_quality | tripled) echo .data/train/CBSD432 .data/test/Set5 .data/test/Set14 ;; esac; }
modules() {  # module:wheel-name-prefix
    case $1 in
        kernels) echo flash_kmeans:flash_kmeans fast_pytorch_kmeans:fast_pytorch_kmeans ;;
        tripled) echo diffusers:diffusers importlib_metadata:importlib_metadata ;;
    esac
}
scripts() { case $1 in kernels) echo ncfd rlff kmeans ;; idc) echo idc compare_speed ;; *) echo "$1" ;; esac; }
# Seconds a stage may run in all, from the start: the device stops a call at 600 s, and the kernel stage
# must end within ~8 min so that it and a short rerun fit a session's 15 device-minutes.
budget() { case $1 in kernels) echo 470 ;; *) echo 570 ;; esac; }

check_files() {  # $1 = stage; one line per missing data folder or wheel
    local d m problems=()
    for d in $(data_dirs "$1"); do
        [ -n "$(ls -A "$d" 2>/dev/null)" ] || problems+=("missing data folder $d (cp -r ../shared/data .data)")
    done
    for m in $(modules "$1"); do
        ls .whl/"${m#*:}"-*.whl >/dev/null 2>&1 || problems+=("missing wheel .whl/${m#*:}-*.whl (for import ${m%%:*})")
    done
    for m in $(scripts "$1"); do
        [ -f "benchmarks/bench_$m.py" ] || problems+=("missing benchmarks/bench_$m.py")
    done
    printf '%s\n' "${problems[@]}"
}

case " $stages check " in
    *" $stage "*) ;;
    *) fail "unknown stage '$stage'; usage: bash benchmarks/gpu_session.sh {$(echo $stages check | tr ' ' '|')}" ;;
esac

if [ "$stage" = check ]; then  # development machine, no GPU: files only
    bad=0
    for s in $stages; do
        while read -r line; do
            [ -n "$line" ] && { echo "gpu_session $s: $line" >&2; bad=1; }
        done < <(check_files "$s")
    done
    # The device takes at most 64 MiB: the working tree plus the carried .data and .whl.
    size=$( { git ls-files -z --cached --others --exclude-standard 2>/dev/null; find .data .whl -type f -print0 2>/dev/null; } \
            | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
    [ "${size:-0}" -le $((64 * 1024 * 1024)) ] \
        || { echo "gpu_session check: tree + .data + .whl = $((size / 1048576)) MiB, over the 64 MiB a call carries" >&2; bad=1; }
    [ $bad = 0 ] && echo "gpu_session check: every stage's data and wheels are in place ($((${size:-0} / 1048576)) MiB to carry)"
    exit $bad
fi

problem=$(check_files "$stage" | grep -v "missing wheel" | head -1)
[ -z "$problem" ] || fail "$problem"
if ls .whl/*.whl >/dev/null 2>&1; then
    site=${TMPDIR:-/tmp}/irkernels-site
    err=$(PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
          --upgrade --target "$site" .whl/*.whl 2>&1) || fail "pip could not install .whl/*.whl: $(echo "$err" | tail -1)"
    export PYTHONPATH=$site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
for m in $(modules "$stage"); do  # already in the image, or brought by a wheel
    err=$(python3 -c "import ${m%%:*}" 2>&1) \
        || fail "cannot import ${m%%:*} ($(echo "$err" | tail -1)): carry its wheel and those it needs in .whl/ (docs/gpu.md)"
done
# A GPU torch can use: a CPU-only build, or a CUDA runtime newer than the driver, stops here.
gpu=$(python3 - 2>&1 <<'EOF'
import warnings
warnings.simplefilter("ignore")
import torch, triton
where = f"torch {torch.__version__} (CUDA {torch.version.cuda}), Triton {triton.__version__}"
if not torch.cuda.is_available():
    raise SystemExit(f"no CUDA GPU usable by {where}")
major, minor = torch.cuda.get_device_capability()
if major < 9:
    raise SystemExit(f"{torch.cuda.get_device_name()} is sm_{major}{minor}; the kernels and targets are for sm_90")
print(f"{torch.cuda.get_device_name()}, {where}")
EOF
) || fail "$(echo "$gpu" | tail -1); nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || echo none)"
echo "gpu_session $stage: $gpu"

out=${OUT:-/tmp/irkernels-gpu}
mkdir -p "$out" logs
deadline=$((start + $(budget "$stage")))
step() {  # step SECONDS LOG CMD...: run CMD for at most SECONDS, never past the stage's deadline
    local cap=$1 log=$2 left=$((deadline - SECONDS - 10))
    shift 2
    [ $left -gt 0 ] || { echo "gpu_session $stage: no time left for $*" | tee -a "$log"; return 1; }
    timeout $((cap < left ? cap : left)) "$@" 2>&1 | tee "$log"
}
python3 -c "import irkernels, json; print(json.dumps(irkernels.backend_report(), indent=1))" | tee logs/backend.txt
train_args=(--data .data/train/CBSD432 --test .data/test/Set5 .data/test/Set14)
status=0
case "$stage" in
    kernels)
        step 180 logs/cuda_tests.log python3 -m pytest -q -m cuda tests/ || status=1
        for op in $(scripts kernels); do
            step 90 "logs/bench_$op.log" python3 "benchmarks/bench_$op.py" || status=1
        done ;;
    idc)  # speed only, no data: synthetic DIV2K-sized instances; compare's students together vs one by one
        step 440 logs/bench_idc.log python3 benchmarks/bench_idc.py || status=1
        step 120 logs/bench_compare_speed.log python3 benchmarks/bench_compare_speed.py --students 8 --steps 300 \
            || status=1 ;;
    *)  # train, idc_quality, tripled: a training folder and test sets
        step 560 "logs/bench_$stage.log" python3 "benchmarks/bench_$stage.py" "${train_args[@]}" || status=1 ;;
esac
tar czf "$out/results-$stage.tgz" benchmarks/results logs
echo "results in $out/results-$stage.tgz ($((SECONDS - start)) s)"
exit $status
