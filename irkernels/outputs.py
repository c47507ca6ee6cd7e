"""What the condensation / distillation pipelines write, shared by IDC, TripleD and the baselines.

A run folder::

    OUT/
      HR/<item>.png                 high-quality targets
      LR_bicubic/X{s}/<item>.png    inputs (BasicSR layout, so `train --data OUT` reads it back)
      records/<unit>.json           one per finished unit of work (an instance / image): the marker
                                    that makes a restart skip it; written after its PNGs
      manifest.json                 settings, versions and every record, written when the run ends
      report.html                   figures and tables, self-contained (images inlined)

Every file is written to a temporary name and renamed, so a killed run leaves no partial file under
a final name. A unit without its record is redone (its PNGs are rewritten). A folder holding a
manifest or records of *different* settings is never reused silently: ``RunFolder`` raises unless
``overwrite=True``.
"""
from __future__ import annotations

import base64
import io
import json
import os
import platform
import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from typing import Any

import numpy as np
import torch


# ---------------------------------------------------------------------------------------------
# atomic files (the one implementation: everything irkernels writes goes through atomic_path)
# ---------------------------------------------------------------------------------------------
@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A fresh temporary name next to ``path`` for the caller to write; renamed to ``path`` when the
    block ends normally, removed when it raises. The caller creates the file with plain ``open``
    (or ``torch.save`` / ``safetensors``), so its mode is the process umask's (0644 under umask
    022), as for any other file the user writes — not ``tempfile``'s owner-only 0600."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{secrets.token_hex(4)}-{os.path.basename(path)}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    with atomic_path(path) as tmp, open(tmp, "xb") as fh:
        fh.write(data)
    return path


def _jsonable(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def atomic_write_json(path: str, obj: Any) -> str:
    """``obj`` (dataclasses, tensors and numpy values converted) as indented JSON, atomically."""
    return atomic_write_bytes(path, (json.dumps(_jsonable(obj), indent=2) + "\n").encode())


def tensor_to_uint8(img: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] → ``(H, W, 3)`` uint8, rounded (values outside [0, 1] clipped)."""
    if img.dim() != 3 or img.shape[0] != 3:
        raise ValueError(f"image must be (3, H, W), got shape {tuple(img.shape)}")
    arr = img.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return arr.permute(1, 2, 0).cpu().numpy()


def png_bytes(img: torch.Tensor | np.ndarray) -> bytes:
    """PNG encoding of a ``(3, H, W)`` float tensor in [0, 1] or an ``(H, W, 3)`` uint8 array."""
    from PIL import Image

    arr = tensor_to_uint8(img) if isinstance(img, torch.Tensor) else img
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def versions() -> dict[str, str]:
    """Versions of what produced a run (recorded in manifests and results)."""
    from . import __version__

    out = {"irkernels": __version__, "torch": torch.__version__, "numpy": np.__version__,
           "python": platform.python_version()}
    try:
        import triton

        out["triton"] = triton.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        out["device"] = torch.cuda.get_device_name()
    return out


# ---------------------------------------------------------------------------------------------
# the run folder
# ---------------------------------------------------------------------------------------------
class RunFolder:
    """A resumable output folder (layout in the module docstring).

    Args:
        root: the folder (created if missing).
        settings: what determines the outputs (method, ratio, seed, …; JSON-able). Stored in
            ``records/_settings.json``; a later run with other settings in the same folder raises
            ``FileExistsError`` unless ``overwrite=True`` (which then clears the folder's outputs).
        scale: SR factor: LR images go to ``LR_bicubic/X{scale}/`` (use 1 for same-size tasks).
    """

    def __init__(self, root: str, settings: Mapping[str, Any], scale: int, *, overwrite: bool = False):
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        self.root = os.path.abspath(root)
        self.scale = scale
        self.settings = _jsonable(dict(settings))
        self.hr_dir = os.path.join(self.root, "HR")
        self.lr_dir = os.path.join(self.root, "LR_bicubic", f"X{scale}")
        self.records_dir = os.path.join(self.root, "records")
        settings_path = os.path.join(self.records_dir, "_settings.json")
        if os.path.exists(settings_path) or os.path.exists(self.manifest_path):
            previous = self._previous_settings(settings_path)
            if previous != self.settings:
                if not overwrite:
                    raise FileExistsError(
                        f"{self.root} holds the outputs of a run with other settings; choose another --out, "
                        f"or pass overwrite=True / --overwrite to replace them. Differences: "
                        f"{_diff(previous, self.settings)}")
                self._clear()
        elif os.path.isdir(self.root) and any(not n.startswith(".") for n in os.listdir(self.root)) and not overwrite:
            raise FileExistsError(f"{self.root} exists and is not an irkernels run folder; choose another --out "
                                  "or pass overwrite=True / --overwrite")
        for d in (self.hr_dir, self.lr_dir, self.records_dir):
            os.makedirs(d, exist_ok=True)
        atomic_write_json(settings_path, self.settings)

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.root, "manifest.json")

    def _previous_settings(self, settings_path: str) -> Any:
        path = settings_path if os.path.exists(settings_path) else self.manifest_path
        with open(path) as fh:
            data = json.load(fh)
        return data if path == settings_path else data.get("settings")

    def _clear(self) -> None:
        import shutil

        for d in ("HR", "LR_bicubic", "records"):
            shutil.rmtree(os.path.join(self.root, d), ignore_errors=True)
        for f in ("manifest.json", "report.html"):
            if os.path.exists(os.path.join(self.root, f)):
                os.unlink(os.path.join(self.root, f))

    # units of work ---------------------------------------------------------------------------
    def _record_path(self, unit: str) -> str:
        if not unit or "/" in unit or unit.startswith((".", "_")):
            raise ValueError(f"unit name must be a plain file stem, got {unit!r}")
        return os.path.join(self.records_dir, f"{unit}.json")

    def is_done(self, unit: str) -> bool:
        return os.path.exists(self._record_path(unit))

    def done_units(self) -> list[str]:
        return sorted(n[:-5] for n in os.listdir(self.records_dir) if n.endswith(".json") and not n.startswith("_"))

    def write_pair(self, item: str, lr: torch.Tensor, hr: torch.Tensor) -> None:
        """One LR/HR pair as PNGs (``(3, h, w)`` and ``(3, h·s, w·s)`` floats in [0, 1])."""
        if hr.shape[-2:] != (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale):
            raise ValueError(f"hr must be scale={self.scale} times lr: got lr {tuple(lr.shape)}, hr {tuple(hr.shape)}")
        atomic_write_bytes(os.path.join(self.lr_dir, f"{item}.png"), png_bytes(lr))
        atomic_write_bytes(os.path.join(self.hr_dir, f"{item}.png"), png_bytes(hr))

    def finish_unit(self, unit: str, record: Mapping[str, Any]) -> None:
        """Mark ``unit`` finished (call after its pairs are written)."""
        atomic_write_json(self._record_path(unit), {"unit": unit, **record})

    def records(self) -> list[dict]:
        out = []
        for unit in self.done_units():
            with open(self._record_path(unit)) as fh:
                out.append(json.load(fh))
        return out

    def write_manifest(self, extra: Mapping[str, Any] | None = None) -> str:
        """``manifest.json``: settings, versions, every unit's record, and ``extra``."""
        records = self.records()
        manifest = {"settings": self.settings, "versions": versions(), "scale": self.scale,
                    "num_units": len(records), "num_pairs": len(os.listdir(self.hr_dir)),
                    **(dict(extra) if extra else {}), "units": records}
        return atomic_write_json(self.manifest_path, manifest)


def _diff(a: Any, b: Any) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return ", ".join(f"{k}: {a.get(k)!r} → {b.get(k)!r}" for k in keys if a.get(k) != b.get(k))
    return f"{a!r} → {b!r}"


# ---------------------------------------------------------------------------------------------
# report.html
# ---------------------------------------------------------------------------------------------
def figure_html(fig) -> str:
    """A matplotlib figure as an inline ``<img>`` (PNG, base64); closes the figure."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def mosaic_html(images: Iterable[torch.Tensor], columns: int = 8, title: str = "") -> str:
    """A grid of ``(3, H, W)`` images in [0, 1] (each resized to the first's size) as an inline PNG."""
    imgs = [img.detach().float().cpu().clamp(0, 1) for img in images]
    if not imgs:
        return "<p>(no images)</p>"
    h, w = imgs[0].shape[-2:]
    imgs = [torch.nn.functional.interpolate(i[None], size=(h, w), mode="nearest")[0] if i.shape[-2:] != (h, w) else i
            for i in imgs]
    rows = (len(imgs) + columns - 1) // columns
    grid = torch.ones(3, rows * (h + 2), columns * (w + 2))
    for k, img in enumerate(imgs):
        r, c = divmod(k, columns)
        grid[:, r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = img
    data = base64.b64encode(png_bytes(grid)).decode()
    caption = f"<figcaption>{title}</figcaption>" if title else ""
    return f'<figure><img src="data:image/png;base64,{data}" style="image-rendering:pixelated">{caption}</figure>'


def table_html(rows: list[Mapping[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p>(empty)</p>"
    columns = columns or list(rows[0])

    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))

    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(path: str, title: str, sections: list[tuple[str, str]]) -> str:
    """A self-contained HTML page: ``sections`` are ``(heading, html)`` pairs."""
    import html

    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [f"<h2>{html.escape(h)}</h2>{body}" for h, body in sections]
    parts.append("</body></html>")
    return atomic_write_bytes(path, "".join(parts).encode())
