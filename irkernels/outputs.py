"""What the condensation / distillation pipelines write, shared by IDC, TripleD and the baselines.

A run folder::

    OUT/
      HR/<item>.png                 high-quality targets
      LR_bicubic/X{s}/<item>.png    inputs (BasicSR layout, so `train --data OUT` reads it back)
      records/<unit>.json           one per finished unit of work (an instance / image): the marker
                                    that makes a restart skip it; written after its PNGs
      partial/<stage>.pt            the state of a unit in progress, written when a stage is stopped
                                    (Ctrl-C, SIGTERM) and resumed by the same command; removed once
                                    the unit's record is written
      manifest.json                 settings, versions and every record, written when the run ends
      report.html                   figures and tables, self-contained (images inlined)

Every file is written to a temporary name and renamed, so a killed run leaves no partial file under
a final name. A unit without its record is redone (its PNGs are rewritten). A folder holding a
manifest or records of *different* settings is never reused silently: ``RunFolder`` raises unless
``overwrite=True`` (``--overwrite``).
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
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
    from ._version import __version__

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


def made_by(folder: str) -> str | None:
    """Which command's outputs ``folder`` holds: ``compare`` (its ``settings.json``), a method
    (``idc``, ``tripled``: a run folder's recorded settings), ``train`` (``last.pt`` / ``log.csv``),
    or ``None`` (missing, empty, or none of these). Commands refuse another command's folder."""
    def read(path: str) -> dict:
        try:
            with open(path) as fh:
                data = json.load(fh)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    if not os.path.isdir(folder):
        return None
    if os.path.exists(os.path.join(folder, "settings.json")):
        return read(os.path.join(folder, "settings.json")).get("command") or "compare"
    settings = os.path.join(folder, "records", "_settings.json")
    if os.path.exists(settings) or os.path.exists(os.path.join(folder, "manifest.json")):
        data = read(settings) or read(os.path.join(folder, "manifest.json")).get("settings") or {}
        return str(data.get("method") or "a method")
    if any(os.path.exists(os.path.join(folder, f)) for f in ("last.pt", "log.csv")):
        return "train"
    return None


def guard_folder(root: str, command: str, what: str, settings: Any, previous: Any, *, overwrite: bool) -> bool:
    """The one guard of every command's output folder (``--out``): a method's run folder
    (:class:`RunFolder`), a comparison, a training run. ``settings``: what the command would make
    the folder with; ``previous``: the settings the folder holds for ``command`` (``None``: none),
    each as the command stores them. Returns whether the folder's outputs must be cleared first.

    - the same settings: resume (``False``);
    - other settings: ``FileExistsError`` unless ``overwrite``, which returns ``True``;
    - none of ``command``'s: another command's output (:func:`made_by`) is refused, ``overwrite``
      or not (never mixed); a folder holding anything else is refused unless ``overwrite``, which
      returns ``True`` (the command's own outputs there are replaced).

    Every refusal is one line naming the folder, what differs and what to do."""
    if previous is not None:
        if previous == settings:
            return False
        if not overwrite:
            raise FileExistsError(f"--out {root} holds {what} with other settings ({settings_diff(previous, settings)}); "
                                  "choose another --out, or pass --overwrite to replace it")
        return True
    if os.path.isdir(root) and any(not n.startswith(".") for n in os.listdir(root)):
        owner = made_by(root)
        if owner is not None and owner != command:
            raise FileExistsError(f"--out {root} holds the output of `{owner}`; choose another --out")
        if owner is None:
            if not overwrite:
                raise FileExistsError(f"--out {root} exists and does not hold {what} (it is not an irkernels run "
                                      "folder); choose another --out, or pass --overwrite to replace it")
            return True
    return False


# ---------------------------------------------------------------------------------------------
# the run folder
# ---------------------------------------------------------------------------------------------
class RunFolder:
    """A resumable output folder (layout in the module docstring).

    Args:
        root: the folder (created if missing).
        settings: what determines the outputs (method, ratio, seed, …; JSON-able). Stored in
            ``records/_settings.json``; a later run with other settings in the same folder raises
            ``FileExistsError`` unless ``overwrite=True`` (which then clears the folder's outputs):
            :func:`guard_folder`, the guard of every command.
        scale: SR factor: LR images go to ``LR_bicubic/X{scale}/`` (use 1 for same-size tasks).
        renamed: old setting name → new one, for folders written before a rename (they resume).
    """

    def __init__(self, root: str, settings: Mapping[str, Any], scale: int, *, overwrite: bool = False,
                 renamed: Mapping[str, str] | None = None):
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        self.root = os.path.abspath(root)
        self.scale = scale
        self.settings = _jsonable(dict(settings))
        self.hr_dir = os.path.join(self.root, "HR")
        self.lr_dir = os.path.join(self.root, "LR_bicubic", f"X{scale}")
        self.records_dir = os.path.join(self.root, "records")
        settings_path = os.path.join(self.records_dir, "_settings.json")
        previous = None
        if os.path.exists(settings_path) or os.path.exists(self.manifest_path):
            previous = self._previous_settings(settings_path)
            if isinstance(previous, dict):  # a folder written before a setting was renamed is the same run
                previous = {(renamed or {}).get(k, k): v for k, v in previous.items()}
        method = str(self.settings.get("method") or "a method")
        if guard_folder(self.root, method, "a run", self.settings, previous, overwrite=overwrite):
            self._clear()
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
        self.clear_partial()

    # the state of units in progress --------------------------------------------------------------
    @property
    def partial_dir(self) -> str:
        return os.path.join(self.root, "partial")

    def partial_path(self, name: str) -> str:
        """Where a stage of a unit in progress keeps its state (``partial/<name>.pt``) when it is
        stopped, for the same command to resume (``irkernels.resume.StepCheckpoint``)."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"partial state name must be a plain file stem, got {name!r}")
        return os.path.join(self.partial_dir, f"{name}.pt")

    def clear_partial(self) -> None:
        """Remove every kept partial state (the units they belong to are recorded)."""
        import shutil

        shutil.rmtree(self.partial_dir, ignore_errors=True)

    # units of work ---------------------------------------------------------------------------
    def _record_path(self, unit: str) -> str:
        if not unit or "/" in unit or unit.startswith((".", "_")):
            raise ValueError(f"unit name must be a plain file stem, got {unit!r}")
        return os.path.join(self.records_dir, f"{unit}.json")

    def is_done(self, unit: str) -> bool:
        return os.path.exists(self._record_path(unit))

    def done_units(self) -> list[str]:
        return sorted(n[:-5] for n in os.listdir(self.records_dir) if n.endswith(".json") and not n.startswith("_"))

    def write_pair(self, item: str, lq: torch.Tensor, hq: torch.Tensor) -> None:
        """One LQ/HQ pair as PNGs (``(3, h, w)`` and ``(3, h·s, w·s)`` floats in [0, 1]) in the
        BasicSR layout's ``LR_bicubic/X{s}/`` and ``HR/`` (for SR, LQ is the LR image)."""
        if hq.shape[-2:] != (lq.shape[-2] * self.scale, lq.shape[-1] * self.scale):
            raise ValueError(f"hq must be scale={self.scale} times lq: got lq {tuple(lq.shape)}, hq {tuple(hq.shape)}")
        atomic_write_bytes(os.path.join(self.lr_dir, f"{item}.png"), png_bytes(lq))
        atomic_write_bytes(os.path.join(self.hr_dir, f"{item}.png"), png_bytes(hq))

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


def settings_diff(a: Any, b: Any) -> str:
    """``"key: old → new, ..."`` for the keys where two settings dicts differ (the run folders' guards)."""
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


THUMBNAIL_SIDE = 96  # report thumbnails are shown at least this many pixels on their short side


def thumbnail(img: torch.Tensor, min_side: int = THUMBNAIL_SIDE) -> torch.Tensor:
    """``(3, h, w)`` image up-scaled by the smallest integer factor that makes its short side at
    least ``min_side``, nearest-neighbour (every stored pixel shown as a block, nothing invented)."""
    if img.dim() != 3:
        raise ValueError(f"img must be (3, h, w), got shape {tuple(img.shape)}")
    factor = max(1, math.ceil(min_side / min(img.shape[-2:])))
    return img.repeat_interleave(factor, -2).repeat_interleave(factor, -1) if factor > 1 else img


def _count_caption(title: str, shown: int, total: int | None) -> str:
    if total is not None and total != shown:
        return f"{title} (showing {shown} of {total})" if title else f"showing {shown} of {total}"
    return f"{title} ({shown})" if title and total is not None else title


def mosaic_html(images: Iterable[torch.Tensor], columns: int = 8, title: str = "", total: int | None = None,
                min_side: int = THUMBNAIL_SIDE) -> str:
    """A grid of ``(3, H, W)`` images in [0, 1] as an inline PNG: each resized to the first's size,
    then shown with its short side at least ``min_side`` px (nearest-neighbour). ``total``: how many
    there are in all, stated in the caption when more than shown ("showing 8 of 64")."""
    imgs = [img.detach().float().cpu().clamp(0, 1) for img in images]
    if not imgs:
        return "<p>(no images)</p>"
    h, w = imgs[0].shape[-2:]
    imgs = [thumbnail(torch.nn.functional.interpolate(i[None], size=(h, w), mode="nearest")[0]
                      if i.shape[-2:] != (h, w) else i, min_side) for i in imgs]
    h, w = imgs[0].shape[-2:]
    rows = (len(imgs) + columns - 1) // columns
    grid = torch.ones(3, rows * (h + 2), columns * (w + 2))
    for k, img in enumerate(imgs):
        r, c = divmod(k, columns)
        grid[:, r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = img
    data = base64.b64encode(png_bytes(grid)).decode()
    caption = _count_caption(title, len(imgs), total)
    caption = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" style="image-rendering:pixelated">{caption}</figure>'


def pair_rows_html(rows: list[tuple[str, list[torch.Tensor]]], columns: list[str], total: int | None = None,
                   min_side: int = THUMBNAIL_SIDE) -> str:
    """Before/after rows: one row per synthetic patch, e.g. ``columns = ["initial real patch",
    "synthetic LR", "teacher HR"]`` and ``rows = [(item name, [init, lr, hr]), ...]`` (``(3, h, w)``
    in [0, 1]; sizes may differ per column). Every image is shown with its short side at least
    ``min_side`` px, nearest-neighbour, so a 16 px LR patch sits next to its 64 px HR target at the
    same scale of blocks; ``total`` (all rows there are) is stated when more than shown."""
    if not rows:
        return "<p>(no pairs)</p>"
    for name, images in rows:
        if len(images) != len(columns):
            raise ValueError(f"row {name!r} has {len(images)} images for {len(columns)} columns")
    head = "<tr><th></th>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>"
    body = []
    for name, images in rows:
        cells = []
        for img in images:
            img = img.detach().float().cpu().clamp(0, 1)
            data = base64.b64encode(png_bytes(thumbnail(img, min_side))).decode()
            size = f"{img.shape[-1]}×{img.shape[-2]}"
            cells.append(f'<td><img src="data:image/png;base64,{data}" style="image-rendering:pixelated" '
                         f'title="{size} px"><br><small>{size}</small></td>')
        body.append(f"<tr><th>{html.escape(name)}</th>{''.join(cells)}</tr>")
    caption = _count_caption("", len(rows), total)
    caption = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table class='pairs'>{caption}{head}{''.join(body)}</table>"


MAX_UP_LEVELS = 2  # how far above the report a path may climb and still be shown relative to it


def _inside(path: str, folder: str) -> bool:
    return os.path.abspath(path).startswith(os.path.abspath(folder) + os.sep)


def keep_network(info: Mapping[str, Any], root: str) -> dict:
    """A network's record (``{"model", "checkpoint", "cache_key", ...}``) with its checkpoint copied
    into ``root/networks/`` when it lies outside ``root`` (``--portable``: the folder then travels
    with every network it was made with): ``checkpoint`` names the copy, ``copied_from`` the
    original. Copied atomically, once per source file (its name: the model and the cache key, or the
    file's own name); a record without a checkpoint, or with one inside ``root``, is returned as is."""
    info = dict(info)
    checkpoint = info.get("checkpoint")
    if not checkpoint or _inside(checkpoint, root):
        return info
    import shutil

    name = (f"{info.get('model', 'network')}-{info['cache_key']}.safetensors" if info.get("cache_key")
            else os.path.basename(checkpoint))
    copy = os.path.join(root, "networks", name)
    if not os.path.exists(copy):
        with atomic_path(copy) as tmp:
            shutil.copyfile(checkpoint, tmp)
    return {**info, "checkpoint": copy, "copied_from": os.path.abspath(checkpoint)}


def checkpoint_shown(info: Mapping[str, Any], report_path: str) -> str | None:
    """How a report names a network's checkpoint: relative to the report, and where it came from —
    copied into the run folder from the cache (``keep_network``), or outside the run folder, which
    it does not travel with (with its cache key, where it has one; ``--portable`` copies it)."""
    checkpoint = info.get("checkpoint")
    if not checkpoint:
        return None
    shown = relative_path(checkpoint, report_path)
    key = f"; cache key {info['cache_key']}" if info.get("cache_key") else ""
    if info.get("copied_from"):
        return f"{shown} (copied from {relative_path(info['copied_from'], report_path)}{key})"
    if not _inside(checkpoint, os.path.dirname(os.path.abspath(report_path))):
        return f"{shown} (outside the run folder: does not travel with it{key}; --portable copies it)"
    return shown


def relative_path(path: str, report_path: str) -> str:
    """How a report names ``path``: relative to the folder of ``report_path`` when it lies inside it
    or near it (at most ``MAX_UP_LEVELS`` ``..``, e.g. a sibling data or cache folder), so the names
    stay valid when a project folder is moved or shared; a file farther away (the default cache
    ``~/.cache/irkernels``) as ``~/...`` when under the home folder, else absolute — a relative path
    that climbs to the root only gets longer and breaks when the run folder moves."""
    rel = os.path.relpath(os.path.abspath(path), os.path.dirname(os.path.abspath(report_path)))
    if rel.split(os.sep)[:MAX_UP_LEVELS + 1].count(os.pardir) <= MAX_UP_LEVELS:
        return rel
    home = os.path.expanduser("~")
    absolute = os.path.abspath(path)
    if home not in ("", os.sep) and absolute.startswith(home + os.sep):
        return os.path.join("~", os.path.relpath(absolute, home))
    return absolute


def cf_modulus(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``|φ_x(t)|`` per frequency: the modulus of the empirical characteristic function
    ``mean_n exp(i⟨t_j, x_n⟩)`` of features ``x`` ``(N, D)`` at frequencies ``t`` ``(T, D)``;
    float64 ``(T,)`` on the CPU (a report figure, not a hot path)."""
    from .ops.ncfd import cf_modulus as modulus, cf_stats  # not at module level: it loads the kernels

    if x.dim() != 2 or t.dim() != 2 or x.shape[1] != t.shape[1]:
        raise ValueError(f"x must be (N, D) and t (T, D) with the same D, got {tuple(x.shape)} and {tuple(t.shape)}")
    return modulus(cf_stats(x.detach().double().cpu(), t.detach().double().cpu(), backend="torch"))[0]


def distribution_figure_html(real: torch.Tensor, synthetic: torch.Tensor, t: torch.Tensor | None = None,
                             bins: int = 40, seed: int = 0) -> str:
    """Real vs synthetic feature distributions, as an inline figure of two panels: histograms of
    all feature values (``(N, D)`` / ``(M, D)``), and ``|φ(t)|`` of both sets per frequency (sorted
    by the real set's), with ``t`` ``(T, D)`` — by default 256 frequencies ~ N(0, 1/D), seeded. The
    closer the two CF-modulus curves, the better the synthetic set matches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if real.dim() != 2 or synthetic.dim() != 2 or real.shape[1] != synthetic.shape[1]:
        raise ValueError(f"real and synthetic must be (N, D) and (M, D), got {tuple(real.shape)} and "
                         f"{tuple(synthetic.shape)}")
    if t is None:
        gen = torch.Generator().manual_seed(seed)
        t = torch.randn(256, real.shape[1], generator=gen, dtype=torch.float64) / real.shape[1] ** 0.5
    cf_real, cf_syn = cf_modulus(real, t), cf_modulus(synthetic, t)
    order = torch.argsort(cf_real, descending=True)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.2))
    values = [a.detach().double().cpu().flatten().numpy() for a in (real, synthetic)]
    edges = np.histogram_bin_edges(np.concatenate(values), bins=bins)
    for v, name in zip(values, (f"real ({real.shape[0]})", f"synthetic ({synthetic.shape[0]})")):
        ax0.hist(v, bins=edges, density=True, histtype="step", lw=1.5, label=name)
    ax0.set_title("feature values")
    ax0.legend(fontsize=8)
    ax1.plot(cf_real[order].numpy(), label="real", lw=1.5)
    ax1.plot(cf_syn[order].numpy(), label="synthetic", lw=1, alpha=0.8)
    ax1.set_title(f"CF modulus |φ(t)| at {t.shape[0]} frequencies (sorted by real)")
    ax1.set_xlabel("frequency")
    ax1.legend(fontsize=8)
    return figure_html(fig)


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
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}"
             "table.pairs td{text-align:center;vertical-align:bottom}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [f"<h2>{html.escape(h)}</h2>{body}" for h, body in sections]
    parts.append("</body></html>")
    return atomic_write_bytes(path, "".join(parts).encode())


def add_report_section(path: str, heading: str, body: str) -> str:
    """Put a section first in a page :func:`write_report` wrote (under its title), for a result
    that comes after the page was made (the demo's student score); atomic."""
    with open(path, encoding="utf-8") as fh:
        page = fh.read()
    head, sep, rest = page.partition("</h1>")
    if not sep:
        raise ValueError(f"{path} is not a report written by irkernels (no title)")
    return atomic_write_bytes(path, f"{head}</h1><h2>{html.escape(heading)}</h2>{body}{rest}".encode())
