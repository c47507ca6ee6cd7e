#!/usr/bin/env bash
# Run on the GPU machine (the `device` tool), from the repo root, one stage per call (each ≤ 10 min):
#
#   bash benchmarks/gpu_session.sh kernels   # CUDA tests + ncfd / rlff / kmeans benchmarks
#   bash benchmarks/gpu_session.sh idc       # IDC ms per instance-iteration, batching 1/4/16, fused vs reference ops
#   bash benchmarks/gpu_session.sh train     # EDSR-baseline x4 on CBSD432 -> Set5/Set14, accumulation 1/4/8
#   bash benchmarks/gpu_session.sh idc_quality | tripled   # experiments on CBSD432 -> Set5/Set14
#
# Preparation on the development machine (see docs/gpu.md): `.data/` = a copy of ../shared/data and
# `.whl/` = wheels the device lacks (diffusers + importlib_metadata, flash-kmeans,
# fast-pytorch-kmeans), both listed in .git/info/exclude and named in the call's `carry`.
# Everything the stage produced comes back as $OUT/results-STAGE.tgz (benchmarks/results + logs).
set -uo pipefail
stage=${1:?usage: gpu_session.sh STAGE}
out=${OUT:-/tmp/irkernels-gpu}
mkdir -p "$out" logs
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
data=.data
train_args=(--data "$data/train/CBSD432" --test "$data/test/Set5" "$data/test/Set14")
python3 -c "import irkernels, json; print(json.dumps(irkernels.backend_report(), indent=1))" | tee logs/backend.txt
case "$stage" in
    kernels)
        timeout 240 python3 -m pytest -q -m cuda tests/ 2>&1 | tee logs/cuda_tests.log
        for op in ncfd rlff kmeans; do
            timeout 150 python3 "benchmarks/bench_$op.py" 2>&1 | tee "logs/bench_$op.log"
        done ;;
    idc)  # speed only: synthetic DIV2K-sized instances, no data
        timeout 560 python3 benchmarks/bench_idc.py 2>&1 | tee logs/bench_idc.log ;;
    *)  # train, idc_quality, tripled: a training folder and test sets
        [ -f "benchmarks/bench_$stage.py" ] || { echo "no benchmarks/bench_$stage.py"; exit 2; }
        timeout 560 python3 "benchmarks/bench_$stage.py" "${train_args[@]}" 2>&1 | tee "logs/bench_$stage.log" ;;
esac
tar czf "$out/results-$stage.tgz" benchmarks/results logs
echo "results in $out/results-$stage.tgz"
