"""pytest-benchmark: one EDSR-baseline ×4 optimizer step (fwd + bwd + AdamW) with gradient accumulation.

``pytest benchmarks/test_bench_train.py --benchmark-enable``; CUDA: batch 16 of 48×48 LR patches (bf16
autocast, channels_last); CPU: batch 4 of 12×12.
"""
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irkernels.models import edsr_baseline  # noqa: E402
from irkernels.train import accumulate_gradients  # noqa: E402

CUDA = torch.cuda.is_available()


@pytest.mark.parametrize("accum", [1, 4])
def test_bench_train_step(benchmark, accum):
    device = torch.device("cuda" if CUDA else "cpu")
    batch, lr_size = (16, 48) if CUDA else (4, 12)
    torch.manual_seed(0)
    fmt = torch.channels_last if CUDA else torch.contiguous_format
    model = edsr_baseline(4).to(device, memory_format=fmt)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    lq = torch.randint(0, 256, (batch, 3, lr_size, lr_size), dtype=torch.uint8, device=device)
    hq = torch.randint(0, 256, (batch, 3, 4 * lr_size, 4 * lr_size), dtype=torch.uint8, device=device)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if CUDA else nullcontext

    def step():
        opt.zero_grad(set_to_none=True)
        loss = accumulate_gradients(model, lq, hq, None, accum, F.l1_loss, autocast, fmt)
        opt.step()
        if CUDA:
            torch.cuda.synchronize()
        return loss

    loss = benchmark(step)
    assert torch.isfinite(loss)
