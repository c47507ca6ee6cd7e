"""SwinIR (Liang et al. 2021) with the official release's module names.

State-dict keys match ``JingyunLiang/SwinIR``'s ``network_swinir.py`` (``conv_first``,
``patch_embed.norm``, ``layers.{i}.residual_group.blocks.{j}.{norm1,attn.qkv,attn.proj,
attn.relative_position_bias_table,attn.relative_position_index,norm2,mlp.fc1,mlp.fc2}``,
``layers.{i}.conv``, ``norm``, ``conv_after_body``, ``conv_before_upsample.0``, ``upsample.*``,
``conv_last``) so the released ``params`` checkpoints load. The shifted-window masks (``attn_mask``
buffers, stored in the release for its training patch size) are recomputed for every input size, so
``load_checkpoint`` ignores stored ones. Images are [0, 1] in and out (``img_range = 1``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from torch import nn

from .edsr import RGB_MEAN, subpixel_upsampler


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """``(B, H, W, C)`` → ``(B·nW, ws, ws, C)``."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """``(B·nW, ws, ws, C)`` → ``(B, H, W, C)``."""
    b = windows.shape[0] // (h * w // ws // ws)
    x = windows.view(b, h // ws, w // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ``ws × ws`` windows with a relative position bias."""

    def __init__(self, dim: int, ws: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * ws - 1) + rel[..., 1])
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bw, n, c = x.shape
        q, k, v = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(bw // nw, nw, self.num_heads, n, n) + mask[None, :, None]).view(bw, self.num_heads, n, n)
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(x)


def shift_mask(h: int, w: int, ws: int, shift: int, device: torch.device) -> torch.Tensor:
    """Additive mask ``(nW, ws², ws²)``: -100 between positions from different regions after the roll."""
    img = torch.zeros(1, h, w, 1, device=device)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, hs, wsl, :] = cnt
            cnt += 1
    win = window_partition(img, ws).view(-1, ws * ws)
    diff = win[:, None, :] - win[:, :, None]
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, ws: int, shift: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.ws, self.shift = ws, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self._masks: dict[tuple, torch.Tensor] = {}

    def mask(self, h: int, w: int, device: torch.device) -> torch.Tensor | None:
        if not self.shift:
            return None
        key = (h, w, str(device))
        if key not in self._masks:
            self._masks[key] = shift_mask(h, w, self.ws, self.shift, device)
        return self._masks[key]

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h, w = size
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, self.ws).view(-1, self.ws * self.ws, c), self.mask(h, w, x.device))
        y = window_reverse(y.view(-1, self.ws, self.ws, c), self.ws, h, w)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BasicLayer(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int, ws: int, mlp_ratio: float, drop_path: list[float]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, ws, 0 if i % 2 == 0 else ws // 2, mlp_ratio, drop_path[i])
            for i in range(depth))

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, size)
        return x


def tokens_to_map(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *size)


def residual_conv(dim: int, resi_connection: str) -> nn.Module:
    """The conv closing each RSTB and the body: one 3×3 conv, or the 3-conv bottleneck."""
    if resi_connection == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if resi_connection == "3conv":
        return nn.Sequential(nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, True),
                             nn.Conv2d(dim // 4, dim // 4, 1), nn.LeakyReLU(0.2, True),
                             nn.Conv2d(dim // 4, dim, 3, 1, 1))
    raise ValueError(f"resi_connection must be '1conv' or '3conv', got {resi_connection!r}")


class RSTB(nn.Module):
    """Residual Swin Transformer block: Swin layers, a conv, a residual connection."""

    def __init__(self, dim: int, depth: int, num_heads: int, ws: int, mlp_ratio: float, drop_path: list[float],
                 resi_connection: str) -> None:
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, num_heads, ws, mlp_ratio, drop_path)
        self.conv = residual_conv(dim, resi_connection)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        y = self.conv(tokens_to_map(self.residual_group(x, size), size))
        return y.flatten(2).transpose(1, 2) + x


class PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.flatten(2).transpose(1, 2))


class SwinIR(nn.Module):
    """SwinIR: ``(N, 3, h, w)`` in [0, 1] → ``(N, 3, h·upscale, w·upscale)``.

    ``upsampler``: ``pixelshuffle`` (classical SR), ``pixelshuffledirect`` (lightweight SR) or ``""``
    (restoration, ``upscale=1``, output = input + residual). Inputs of any size are reflect-padded to
    a multiple of ``window_size`` and the output cropped back.
    """

    def __init__(self, upscale: int = 4, embed_dim: int = 180, depths: tuple[int, ...] = (6,) * 6,
                 num_heads: tuple[int, ...] = (6,) * 6, window_size: int = 8, mlp_ratio: float = 2.0,
                 upsampler: str = "pixelshuffle", resi_connection: str = "1conv", drop_path_rate: float = 0.1,
                 num_feat: int = 64) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths and num_heads must have one length, got {depths} and {num_heads}")
        self.upscale, self.upsampler, self.window_size = upscale, upsampler, window_size
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(3, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(len(depths) + 1)]
        self.layers = nn.ModuleList(
            RSTB(embed_dim, d, nh, window_size, mlp_ratio, dpr[starts[i]:starts[i + 1]], resi_connection)
            for i, (d, nh) in enumerate(zip(depths, num_heads)))
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection)
        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True))
            self.upsample = subpixel_upsampler(upscale, num_feat)
            self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(nn.Conv2d(embed_dim, upscale * upscale * 3, 3, 1, 1), nn.PixelShuffle(upscale))
        elif upsampler == "":
            if upscale != 1:
                raise ValueError(f"upsampler '' is for restoration (upscale=1), got upscale={upscale}")
            self.conv_last = nn.Conv2d(embed_dim, 3, 3, 1, 1)
        else:
            raise ValueError(f"upsampler must be 'pixelshuffle', 'pixelshuffledirect' or '', got {upsampler!r}")
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        t = self.patch_embed(x)
        for layer in self.layers:
            t = layer(t, size)
        return tokens_to_map(self.norm(t), size)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        ws = self.window_size
        ph, pw = (-x.shape[-2]) % ws, (-x.shape[-1]) % ws
        return F.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x

    def _shallow_and_deep(self, x: torch.Tensor) -> torch.Tensor:
        first = self.conv_first(self._pad(x - self.mean))
        return self.conv_after_body(self._body(first)) + first

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Deep features before the up-sampler, ``(N, embed_dim, h, w)``."""
        h, w = x.shape[-2:]
        return self._shallow_and_deep(x)[..., :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        feats = self._shallow_and_deep(x)
        if self.upsampler == "pixelshuffle":
            out = self.conv_last(self.upsample(self.conv_before_upsample(feats)))
        elif self.upsampler == "pixelshuffledirect":
            out = self.upsample(feats)
        else:
            out = self._pad(x - self.mean) + self.conv_last(feats)
        return (out + self.mean)[..., : h * self.upscale, : w * self.upscale]


def swinir_classical(scale: int = 4) -> SwinIR:
    """Classical SR: 6 RSTB × 6 blocks, 180 channels, window 8, pixel-shuffle up-sampler (~11.9 M params)."""
    return SwinIR(scale, 180, (6,) * 6, (6,) * 6, 8, 2.0, "pixelshuffle")


def swinir_lightweight(scale: int = 4) -> SwinIR:
    """Lightweight SR: 4 RSTB × 6 blocks, 60 channels, window 8, one-step up-sampler (~0.9 M params)."""
    return SwinIR(scale, 60, (6,) * 4, (6,) * 4, 8, 2.0, "pixelshuffledirect")
