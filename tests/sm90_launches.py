"""The Triton launches each op makes on an H100, as compile specs for ``sm90.compile_sm90``.

One place for them: the sm_90 compile tests check these configurations, and
``benchmarks/roofline.py`` reports the registers, spills, shared memory and occupancy of the same
ones (``launches()``).
"""
from __future__ import annotations

import torch

from irkernels.ops import rlff as rlff_mod
from irkernels.ops.ncfd import _block_sizes, _dot_precisions, triton_backward_supported

# (precision, D, sample dtype) of the NCFD kernels: every precision at the pipelines' D=128, the fast
# mode with bf16 samples and at D=256.
NCFD_CASES = [("fast", 128, "fp32"), ("high", 128, "fp32"), ("highest", 128, "fp32"), ("fast", 128, "bf16"),
              ("fast", 256, "fp32")]

_NCFD_COMMON = {"N": "i32", "D": "i32", "T": "i32"}
_NCFD_STRIDES = {"stride_xn": "i32", "stride_xd": "i32", "stride_tt": "i32", "stride_td": "i32"}
_NCFD_FLAGS = {"PHASE_PRECISION": "constexpr", "SUM_PRECISION": "constexpr", "EMULATE_TF32": "constexpr",
               "RANGE_REDUCE": "constexpr", "APPROX": "constexpr"}


def ncfd_specs(precision: str, D: int, x_type: str) -> list[dict]:
    """The forward kernel and, where this Triton launches them, the two backward kernels, with the
    tiles ``_block_sizes`` picks on CUDA (the forward's PTX kept: the tests look for the SFU's
    sin/cos and tensor-core dots)."""
    fast = precision == "fast"
    phase, total = _dot_precisions(precision)
    flags = dict(PHASE_PRECISION=phase, SUM_PRECISION=total, EMULATE_TF32=0, RANGE_REDUCE=fast, APPROX=fast)
    sizes = _block_sizes(D, precision, torch.device("cuda"))
    fn, ft, fd, fw, fs = sizes["fwd"]
    bn, bt, bd, bw, bs = sizes["bwd"]
    tn, tt, td, tw, ts = sizes["bwd_t"]
    ptrs = {"X": f"*{x_type}", "TF": "*fp32", "GID": "*i32"}
    # What a launch at D=128, T=4096 specialises: 16-byte aligned pointers, ints that are multiples of 16.
    aligned = ["X", "TF", "ROWS", "GID", "OFFS", "PART", "COEF_RE", "COEF_IM", "DX", "DT", "D", "T", "stride_xn",
               "stride_tt", "stride_dn"]
    specs = [
        dict(module="irkernels.ops.ncfd", kernel="_cf_sums_kernel", num_warps=fw, num_stages=fs, want_ptx=True,
             signature={"X": f"*{x_type}", "TF": "*fp32", "ROWS": "*i32", "GID": "*i32", "OFFS": "*i32",
                        "PART": "*fp32", **_NCFD_COMMON, "G": "i32", "n_splits": "i32", **_NCFD_STRIDES,
                        "HAS_GROUPS": "constexpr", "G_BLOCK": "constexpr", "BLOCK_N": "constexpr",
                        "BLOCK_T": "constexpr", "BLOCK_D": "constexpr", **_NCFD_FLAGS},
             constexprs=dict(HAS_GROUPS=True, G_BLOCK=32, BLOCK_N=fn, BLOCK_T=ft, BLOCK_D=fd, **flags)),
        dict(module="irkernels.ops.ncfd", kernel="_cf_grad_samples_kernel", num_warps=bw, num_stages=bs,
             signature={**ptrs, "COEF_RE": "*fp32", "COEF_IM": "*fp32", "DX": f"*{x_type}", **_NCFD_COMMON,
                        **_NCFD_STRIDES, "stride_dn": "i32", "stride_dd": "i32", "HAS_GROUPS": "constexpr",
                        "BLOCK_N": "constexpr", "BLOCK_T": "constexpr", "BLOCK_D": "constexpr", **_NCFD_FLAGS},
             constexprs=dict(HAS_GROUPS=True, BLOCK_N=bn, BLOCK_T=bt, BLOCK_D=bd, **flags)),
        dict(module="irkernels.ops.ncfd", kernel="_cf_grad_freqs_kernel", num_warps=tw, num_stages=ts,
             signature={**ptrs, "COEF_RE": "*fp32", "COEF_IM": "*fp32", "DT": "*fp32", **_NCFD_COMMON,
                        "rows_per_chunk": "i32", **_NCFD_STRIDES, "HAS_GROUPS": "constexpr", "BLOCK_N": "constexpr",
                        "BLOCK_T": "constexpr", "BLOCK_D": "constexpr", **_NCFD_FLAGS},
             constexprs=dict(HAS_GROUPS=False, BLOCK_N=tn, BLOCK_T=tt, BLOCK_D=td, **flags)),
    ]
    if not triton_backward_supported(D, precision, torch.device("cuda")):
        specs = specs[:1]  # this Triton runs the torch backward there: only the forward is launched
    for spec in specs:
        spec["divisible_by_16"] = [name for name in aligned if name in spec["signature"]]
    return specs


def _rlff_spec(kernel: str, pointers: dict, ints: dict, constexprs: dict, warps: int, stages: int) -> dict:
    """A compile spec as a launch would specialise it: integers equal to 1 become constexpr, other
    multiples of 16 and all pointers are marked divisible by 16 (Triton's JIT does the same)."""
    signature, consts, divisible = {}, dict(constexprs), list(pointers)
    for name in getattr(rlff_mod, kernel).arg_names:
        if name in pointers:
            signature[name] = f"*{pointers[name]}"
        elif name in ints and ints[name] != 1:
            signature[name] = "i32"
            divisible += [name] if ints[name] % 16 == 0 else []
        else:
            signature[name] = "constexpr"
            consts.setdefault(name, ints.get(name))
    return {"module": "irkernels.ops.rlff", "kernel": kernel, "signature": signature, "constexprs": consts,
            "divisible_by_16": divisible, "num_warps": warps, "num_stages": stages, "want_ptx": True}


def rlff_specs() -> list[dict]:
    """The CUDA launches of the issue's first shape (N=151, c=64, 64×64, k=3, C_out=128, p=4,
    contiguous NCHW) for fp32 and bf16, with the tile sizes ``_tiles`` picks."""
    n, c, h, w, k, c_out, p = 151, 64, 64, 64, 3, 128, 4
    geometry = {"C": c, "H": h, "W": w, "WP": w // p, "HPWP": (h // p) * (w // p), "C_OUT": c_out}
    f_strides = {"sf_n": c * h * w, "sf_c": h * w, "sf_h": w, "sf_w": 1}
    specs = []
    for dt, torch_dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        cfg = rlff_mod._tiles(torch_dtype, c, c_out, cuda=True)
        common = {"K": k, "P": p, "IS_FP64": False, "DOT_PRECISION": "tf32" if dt == "fp32" else "ieee"}
        specs.append(_rlff_spec(
            "_rlff_fwd_kernel",
            {"f_ptr": dt, "w_ptr": dt, "valid_ptr": "fp32", "bias_ptr": "fp32", "out_ptr": dt},
            {**geometry, **f_strides, "M_OUT": n * h * w},
            {**common, "KK_PAD": 16, "BIAS_PRECISION": "tf32", "BLOCK_M": cfg.fwd_m, "BLOCK_N": cfg.fwd_n,
             "BLOCK_C": cfg.fwd_c}, cfg.warps, cfg.stages))
        for batch_stats in (False, True):
            specs.append(_rlff_spec(
                "_rlff_bwd_kernel",
                {"g_ptr": dt, "w_ptr": dt, "f_ptr": dt, "mean_ptr": "fp32", "inv_std_ptr": "fp32",
                 "gx_ptr": "fp32" if batch_stats else dt, "psum_ptr": "fp32", "psumx_ptr": "fp32"},
                {**geometry, **f_strides, "M_IN": n * h * w, "sg_0": p * p * c_out, "sg_1": c_out, "sg_2": 1,
                 **{"sx" + k[2:]: v for k, v in f_strides.items()}},
                {**common, "BATCH_STATS": batch_stats, "BLOCK_M": cfg.bwd_m, "BLOCK_C": cfg.bwd_c,
                 "BLOCK_O": cfg.bwd_o}, cfg.warps, cfg.stages))
    specs.append(_rlff_spec("_dft_rows_kernel", {"rows_ptr": "i64", "w_ptr": "fp32"},
                            {"C": c, "C_OUT": c_out, "TOTAL": 9 * c * c_out}, {"K": k, "IS_FP64": False, "BLOCK": 1024},
                            4, 3))
    rows, block_w = rlff_mod._plane_tile(h, w, torch.device("cuda"))
    specs.append(_rlff_spec("_channel_stats_kernel", {"f_ptr": "bf16", "plane_mean_ptr": "fp32", "plane_m2_ptr": "fp32"},
                            {"C": c, "H": h, "W": w, **f_strides},
                            {"IS_FP64": False, "ROWS": rows, "BLOCK_W": block_w}, 4, 3))
    specs.append(_rlff_spec(
        "_batchnorm_grad_kernel",
        {"g_ptr": "fp32", "f_ptr": "fp16", "out_ptr": "fp16", "mean_ptr": "fp32", "inv_std_ptr": "fp32",
         "g_mean_ptr": "fp32", "gx_mean_ptr": "fp32"},
        {"C": c, "H": h, "W": w, **{f"s{t}_{d}": v for t in "gfo" for d, v in zip("nchw", f_strides.values())}},
        {"IS_FP64": False, "ROWS": rows, "BLOCK_W": block_w}, 4, 3))
    return specs


def kmeans_specs() -> list[dict]:
    """The fused assign-and-accumulate kernel as Lloyd runs it (tf32x3, an autotuned config) and as
    k-means++ seeding runs it (distance matrix, ieee), and the centroid update."""
    common = {"x_ptr": "*fp32", "centroids_ptr": "*fp32", "active_ptr": "*i8", "chunk_instance_ptr": "*i32",
              "chunk_start_ptr": "*i32", "chunk_end_ptr": "*i32", "chunk_slot_ptr": "*i32", "labels_ptr": "*i64",
              "min_dist_ptr": "*fp32", "part_sums_ptr": "*fp32", "part_counts_ptr": "*fp32",
              "part_inertia_ptr": "*fp32", "dists_ptr": "*fp32", "D": "i32", "K": "i32", "BLOCK_N": "constexpr",
              "BLOCK_D": "constexpr", "BLOCK_K": "constexpr", "ACCUMULATE": "constexpr", "WRITE_DISTS": "constexpr",
              "PRECISION": "constexpr"}
    specs = [{"module": "irkernels.ops.kmeans", "kernel": "_assign_accumulate_tuned", "signature": common,
              "constexprs": {"BLOCK_N": 64, "BLOCK_D": 128, "BLOCK_K": bk, "ACCUMULATE": acc, "WRITE_DISTS": not acc,
                             "PRECISION": prec}, "want_ptx": True}
             for acc, prec, bk in ((True, "tf32x3", 32), (False, "ieee", 16))]
    specs[0]["constexprs"]["BLOCK_N"], specs[0]["num_warps"] = 16, 8  # an autotuned config
    update_sig = {"part_sums_ptr": "*fp32", "part_counts_ptr": "*fp32", "old_ptr": "*fp32", "new_ptr": "*fp32",
                  "counts_ptr": "*fp32", "active_in_ptr": "*i8", "active_out_ptr": "*i8", "n_iter_ptr": "*i64",
                  "tol_ptr": "*fp32", "shift_ptr": "*fp32", "flags_ptr": "*i32", "SLOTS": "i32", "D": "i32",
                  "K": "i32", "BLOCK_D": "constexpr", "BLOCK_K": "constexpr"}
    specs.append({"module": "irkernels.ops.kmeans", "kernel": "_update_centroids_kernel", "signature": update_sig,
                  "constexprs": {"BLOCK_D": 128, "BLOCK_K": 32}, "want_ptx": True})
    return specs


def grouping_specs() -> list[dict]:
    """The pairing kernel (nearest real patch in the group) with its CUDA tiles."""
    sig = {"syn_ptr": "*fp32", "real_ptr": "*fp32", "real_norm_ptr": "*fp32", "syn_rows_ptr": "*i64",
           "real_rows_ptr": "*i64", "tile_syn_lo_ptr": "*i32", "tile_syn_hi_ptr": "*i32", "tile_real_lo_ptr": "*i32",
           "tile_real_hi_ptr": "*i32", "best_ptr": "*i64", "F": "i32", "BLOCK_M": "constexpr",
           "BLOCK_N": "constexpr", "BLOCK_F": "constexpr", "PRECISION": "constexpr"}
    return [{"module": "irkernels.ops.nearest", "kernel": "_nearest_in_group_kernel", "signature": sig,
             "constexprs": {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_F": 32, "PRECISION": "tf32x3"},
             "num_warps": 8, "want_ptx": True}]


def launches() -> list[tuple[str, str, dict]]:
    """``(op, configuration, spec)`` for every launch above, the configuration in words."""
    out = []
    for precision, D, x_type in NCFD_CASES:
        out += [("ncfd", f"{spec['kernel']} {precision}, D={D}, {x_type} samples", spec)
                for spec in ncfd_specs(precision, D, x_type)]
    for spec in rlff_specs():
        consts, dtype = spec["constexprs"], spec["signature"].get("f_ptr", " ")[1:]
        stats = {True: ", batch stats", False: ", given stats"}.get(consts.get("BATCH_STATS"), "")
        out.append(("rlff", f"{spec['kernel']} {dtype}{stats}".strip(), spec))
    for spec in kmeans_specs():
        consts = spec["constexprs"]
        mode = {True: " Lloyd step", False: " distance matrix"}.get(consts.get("ACCUMULATE"), "")
        out.append(("kmeans", spec["kernel"] + (f"{mode}, {consts['PRECISION']}" if mode else ""), spec))
    out += [("grouping", f"{spec['kernel']} {spec['constexprs']['PRECISION']}", spec) for spec in grouping_specs()]
    return out
