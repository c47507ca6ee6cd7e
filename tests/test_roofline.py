"""``benchmarks/roofline.py``: the work counts of small cases written out by hand, the floor
arithmetic against the H100's published peaks, and the sm_90 occupancy arithmetic."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import published_peaks  # noqa: E402
from benchmarks.roofline import Work, findings, floor_times, kmeans_work, ncfd_work, occupancy, rlff_work  # noqa: E402


def test_ncfd_counts_by_hand():
    """N=4 real, M=2 synthetic samples, D=3, T=5 frequencies, fp32."""
    work = ncfd_work(4, 2, 5, 3)
    # sin/cos arguments: forward 5·(4+2) = 30, backward (y's, recomputed) 5·2 = 10
    assert work.tf32_flops == 3 * (2 * 3) * 40 + (2 * 3) * 10 == 780  # 3×TF32 phase dots + the TF32 w·t GEMM
    assert work.sfu_ops == 2 * 40 == 80  # a sin and a cos per argument
    assert work.fp32_flops == 30 * (6 + 2) + 10 * (6 + 3) == 330  # range reduction + sums / + w
    x, y, t = 4 * 3 * 4, 2 * 3 * 4, 5 * 3 * 4  # bytes: 48, 24, 60
    assert work.hbm_bytes == (x + y + t) + (y + y + t) == 240  # backward: y and t again, y's gradient
    assert ncfd_work(4, 2, 5, 3, phase_passes=1).tf32_flops == 6 * 40 + 6 * 10 == 300
    cached = ncfd_work(0, 2, 5, 3)  # the real side's statistics cached: only y's 10 + 10 arguments
    assert (cached.tf32_flops, cached.sfu_ops, cached.hbm_bytes) == (3 * 6 * 20 + 6 * 10, 40, (y + t) + (y + y + t))
    assert ncfd_work(4, 0, 5, 3).hbm_bytes == x + t  # statistics alone: no backward


def test_rlff_counts_by_hand():
    """f (1, 2, 4, 4), k=3, C_out=8, p=2: 16 positions × 8 outputs × 2·9 taps·channels."""
    fwd = rlff_work(1, 2, 4, 4, k=3, c_out=8, p=2, backward=False)
    assert fwd == Work(tf32_flops=2 * 16 * 8 * 18, hbm_bytes=2 * 16 * 4 + 16 * 8 * 4)  # f read, output written
    both = rlff_work(1, 2, 4, 4, k=3, c_out=8, p=2, batch_stats=True)
    assert both == Work(tf32_flops=2 * 4608, hbm_bytes=2 * (128 + 512 + 128))
    assert rlff_work(1, 2, 4, 4, k=3, c_out=8, p=2, dtype=torch.bfloat16).bf16_flops == 2 * 4608


def test_kmeans_reads_the_points_every_iteration_only_beyond_the_l2():
    small = kmeans_work([600, 400], 4, 8, 5)  # 32 KB of points: re-read from L2
    assert small == Work(tf32_flops=5 * 3 * 2 * 1000 * 4 * 8, fp32_flops=5 * 1000 * (3 * 4 + 8),
                         hbm_bytes=1000 * 8 * 4 + 1000 * 8)
    big = kmeans_work([2**20], 4, 16, 5)  # 64 MiB of points > the 50 MB L2
    assert big.hbm_bytes == 5 * 2**20 * 16 * 4 + 2**20 * 8


def test_floor_is_the_slowest_pipe_at_the_h100_peaks():
    peaks = published_peaks("H100")
    assert peaks["sfu_ops_per_s"] == pytest.approx(132 * 16 * 1.98e9)
    # 1 ms of TF32 and 1 ms of BF16 share the tensor cores: 2 ms; 1 ms of HBM traffic overlaps
    times = floor_times(Work(tf32_flops=494.7e9, bf16_flops=989.4e9, hbm_bytes=3.35e9), peaks)
    assert times["tensor_ms"] == pytest.approx(2.0) and times["memory_ms"] == pytest.approx(1.0)
    assert times["floor_ms"] == pytest.approx(2.0) and times["bound"] == "tensor"
    times = floor_times(Work(sfu_ops=3 * 132 * 16 * 1.98e6, fp32_flops=66.9e9), peaks)
    assert times["sfu_ms"] == pytest.approx(3.0) and times["fp32_ms"] == pytest.approx(1.0)
    assert times["floor_ms"] == pytest.approx(3.0) and times["bound"] == "sfu"


def test_occupancy_arithmetic():
    # 186 registers → 5,952 per warp, allocated as 24 units of 256 = 6,144; 8 warps need 49,152 of
    # 65,536: one block. Shared memory (80 KiB + 1 KiB reserved) would allow 2, threads 8.
    assert occupancy(186, 8, 80 * 1024) == {"blocks_per_sm": 1, "warps_per_sm": 8, "occupancy": 0.125,
                                            "limited_by": "registers"}
    # 64 registers × 4 warps = 8,192 per block: 8 blocks by registers, 16 by threads; 100 KiB + 1 KiB of
    # shared memory: 233,472 // 103,424 = 2
    assert occupancy(64, 4, 100 * 1024) == {"blocks_per_sm": 2, "warps_per_sm": 8, "occupancy": 0.125,
                                            "limited_by": "shared memory"}
    # one-warp blocks of 32 registers: 64 by registers and threads, the 32-block cap binds
    assert occupancy(32, 1, 0) == {"blocks_per_sm": 32, "warps_per_sm": 32, "occupancy": 0.5, "limited_by": "blocks"}
    assert occupancy(64, 4, 228 * 1024)["blocks_per_sm"] == 0  # over the 227 KB a block may have


def test_findings_name_unreachable_targets_and_spilling_kernels():
    rows = [{"op": "a", "case": "big", "floor_ms": 5.0, "target_ms": 4.0, "target_reachable": "no"},
            {"op": "b", "case": "small", "floor_ms": 1.0, "target_ms": 4.0, "target_reachable": "yes"}]
    kernels = [{"op": "a", "configuration": "k1", "spill_bytes": 24}, {"op": "b", "configuration": "k2", "spill_bytes": 0}]
    text = findings(rows, kernels)
    assert "a (big): floor 5 ms > target 4 ms" in text and "small" not in text
    assert "a k1 (24 bytes)" in text and "k2" not in text
    assert "spill registers: none" in findings(rows, kernels[1:])
