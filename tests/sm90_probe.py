"""A tiny kernel for ``test_sm90_harness.py``: a tensor-core dot and a sine, so the compile
exercises both the MMA lowering and libdevice."""
import triton
import triton.language as tl


@triton.jit
def probe_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    idx = tl.arange(0, BLOCK)
    tile = idx[:, None] * BLOCK + idx[None, :]
    mask = idx[:, None] < n
    a = tl.load(a_ptr + tile, mask=mask, other=0.0)
    b = tl.load(b_ptr + tile)
    tl.store(out_ptr + tile, tl.sin(tl.dot(a, b)), mask=mask)
