"""Networks: official state-dict layouts load, features() shapes, checkpoints round-trip."""
import pytest
import torch
from torch import nn

from irkernels.models import (EDSR, SwinIR, TripleDCNN, build_model, edsr_baseline, load_checkpoint, model_scale,
                              read_state_dict, save_checkpoint, swinir_lightweight)


def official_edsr_shapes(n_resblocks: int, n_feats: int, scale: int) -> dict[str, tuple]:
    """Keys and shapes of sanghyun-son/EDSR-PyTorch's released EDSR checkpoints (src/model/edsr.py)."""
    conv = lambda cin, cout, k=3: {"weight": (cout, cin, k, k), "bias": (cout,)}  # noqa: E731
    mods = {"sub_mean": conv(3, 3, 1), "add_mean": conv(3, 3, 1), "head.0": conv(3, n_feats)}
    for i in range(n_resblocks):
        mods[f"body.{i}.body.0"] = conv(n_feats, n_feats)
        mods[f"body.{i}.body.2"] = conv(n_feats, n_feats)
    mods[f"body.{n_resblocks}"] = conv(n_feats, n_feats)
    if scale == 3:
        mods["tail.0.0"] = conv(n_feats, 9 * n_feats)
    else:
        for s in range({2: 1, 4: 2}[scale]):
            mods[f"tail.0.{2 * s}"] = conv(n_feats, 4 * n_feats)
    mods["tail.1"] = conv(n_feats, 3)
    return {f"{m}.{p}": shape for m, ps in mods.items() for p, shape in ps.items()}


def official_relative_position_index(ws: int) -> torch.Tensor:
    """As written in SwinIR's WindowAttention.__init__."""
    coords = torch.stack(torch.meshgrid([torch.arange(ws), torch.arange(ws)], indexing="ij"))
    flat = torch.flatten(coords, 1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += ws - 1
    rel[:, :, 1] += ws - 1
    rel[:, :, 0] *= 2 * ws - 1
    return rel.sum(-1)


def official_swinir_light_x4(img_size: int = 64) -> dict[str, torch.Tensor]:
    """A state dict laid out as JingyunLiang/SwinIR's lightweight ×4 release (random values)."""
    g = torch.Generator().manual_seed(0)
    shapes = {"conv_first.weight": (60, 3, 3, 3), "conv_first.bias": (60,), "patch_embed.norm.weight": (60,),
              "patch_embed.norm.bias": (60,)}
    n_windows = (img_size // 8) ** 2
    sd = {}
    for i in range(4):
        for j in range(6):
            b = f"layers.{i}.residual_group.blocks.{j}."
            shapes.update({b + "norm1.weight": (60,), b + "norm1.bias": (60,),
                           b + "attn.relative_position_bias_table": (225, 6), b + "attn.qkv.weight": (180, 60),
                           b + "attn.qkv.bias": (180,), b + "attn.proj.weight": (60, 60), b + "attn.proj.bias": (60,),
                           b + "norm2.weight": (60,), b + "norm2.bias": (60,), b + "mlp.fc1.weight": (120, 60),
                           b + "mlp.fc1.bias": (120,), b + "mlp.fc2.weight": (60, 120), b + "mlp.fc2.bias": (60,)})
            sd[b + "attn.relative_position_index"] = official_relative_position_index(8)
            if j % 2:
                sd[b + "attn_mask"] = torch.zeros(n_windows, 64, 64)
        shapes.update({f"layers.{i}.conv.weight": (60, 60, 3, 3), f"layers.{i}.conv.bias": (60,)})
    shapes.update({"norm.weight": (60,), "norm.bias": (60,), "conv_after_body.weight": (60, 60, 3, 3),
                   "conv_after_body.bias": (60,), "upsample.0.weight": (48, 60, 3, 3), "upsample.0.bias": (48,)})
    sd.update({k: torch.randn(s, generator=g) for k, s in shapes.items()})
    return sd


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_baseline_loads_official_layout(tmp_path, scale):
    g = torch.Generator().manual_seed(scale)
    sd = {k: torch.randn(s, generator=g) for k, s in official_edsr_shapes(16, 64, scale).items()}
    torch.save(sd, tmp_path / "edsr_baseline.pt")  # the official files are bare state dicts
    model = load_checkpoint(edsr_baseline(scale), str(tmp_path / "edsr_baseline.pt"))
    mine = model.state_dict()
    assert set(mine) == set(sd)
    assert all(torch.equal(mine[k], sd[k]) for k in sd)


def test_edsr_full_layout_and_mean_shift():
    model = build_model("edsr", 4)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == official_edsr_shapes(32, 256, 4)
    # the official networks work on [0, 255]: sub_mean's bias is -255 × the DIV2K mean
    assert torch.allclose(model.sub_mean.bias, -255 * torch.tensor([0.4488, 0.4371, 0.4040]))
    assert not model.sub_mean.weight.requires_grad


def test_swinir_loads_official_release_wrapper(tmp_path):
    sd = official_swinir_light_x4()
    torch.save({"params": sd}, tmp_path / "swinir_light.pth")
    model = load_checkpoint(swinir_lightweight(4), str(tmp_path / "swinir_light.pth"))
    mine = model.state_dict()
    assert set(mine) == {k for k in sd if not k.endswith("attn_mask")}  # masks are recomputed per size
    assert all(torch.equal(mine[k], sd[k]) for k in mine)
    x = torch.rand(1, 3, 20, 13)
    assert model(x).shape == (1, 3, 80, 52)


def test_swinir_classical_param_count():
    n = sum(p.numel() for p in build_model("swinir-classical", 4).parameters())
    assert 11.8e6 < n < 12.0e6  # the paper's 11.9 M


def test_wrappers_prefixes_and_errors(tmp_path):
    model = edsr_baseline(2)
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"params_ema": sd, "params": {k: v * 0 for k, v in sd.items()}}, tmp_path / "ema.pth")
    assert read_state_dict(str(tmp_path / "ema.pth")).keys() == model.state_dict().keys()
    fresh = load_checkpoint(edsr_baseline(2), str(tmp_path / "ema.pth"))
    assert torch.equal(fresh.head[0].weight, model.head[0].weight)  # params_ema preferred
    with pytest.raises(ValueError, match="does not fit EDSR"):
        load_checkpoint(edsr_baseline(4), str(tmp_path / "ema.pth"))
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(model, str(tmp_path / "missing.pth"))
    torch.save({"epoch": 3}, tmp_path / "junk.pth")
    with pytest.raises(ValueError, match="holds no state dict"):
        read_state_dict(str(tmp_path / "junk.pth"))


def test_safetensors_round_trip(tmp_path):
    model = build_model("swinir-light", 2)
    path = save_checkpoint(model, str(tmp_path / "sub" / "m.safetensors"))
    loaded = load_checkpoint(build_model("swinir-light", 2), path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


SMALL_VARIANTS = {  # every up-sampler path at a width that builds in milliseconds
    "swinir-pixelshuffle-x3": lambda: SwinIR(3, 12, (2,), (2,), 8, 2.0, "pixelshuffle", num_feat=8),
    "swinir-direct-x2": lambda: SwinIR(2, 12, (2, 2), (2, 2), 8, 2.0, "pixelshuffledirect", "3conv"),
    "swinir-restoration": lambda: SwinIR(1, 12, (2,), (2,), 8, 2.0, ""),
    "edsr-x3": lambda: EDSR(3, n_resblocks=2, n_feats=8, res_scale=0.1),
}


@pytest.mark.parametrize("name", ["edsr-baseline", "edsr-small", "swinir-light", "tripled-cnn", *SMALL_VARIANTS])
def test_features_before_upsampler(name):
    model = SMALL_VARIANTS[name]() if name in SMALL_VARIANTS else build_model(name, 1 if name == "tripled-cnn" else 2)
    model.eval()
    scale = model_scale(model)
    x = torch.rand(2, 3, 11, 9)
    with torch.no_grad():
        feats, out = model.features(x), model(x)
    assert feats.shape[0] == 2 and feats.shape[-2:] == (11, 9) and feats.shape[1] >= 8
    assert out.shape == (2, 3, 11 * scale, 9 * scale)
    assert torch.isfinite(out).all()


def test_tripled_cnn_structure():
    model = TripleDCNN()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8 and all(c.kernel_size == (3, 3) and c.stride == (1, 1) for c in convs)
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(model(x), x)  # identity at initialisation


def test_edsr_small_is_wider_than_edsr_tiny():
    tiny, small = (sum(p.numel() for p in build_model(n, 2).parameters()) for n in ("edsr-tiny", "edsr-small"))
    assert 3.5 < small / tiny < 4.5  # twice the width: about four times the weights and the work


def test_build_model_errors():
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("rcan")
    with pytest.raises(ValueError, match="scale must be"):
        build_model("edsr-baseline", 5)
    with pytest.raises(ValueError, match="swinir-restoration"):
        build_model("swinir-light", 1)
