"""Figures of the lab, drawn from the curves file that ``python -m checks`` wrote.

Each figure is saved as PNG (screen) and PDF (vector, for the report).
"""

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from checks.records import atomic_write  # noqa: E402

EPS64, EPS32, EPS_MP = np.finfo(np.float64).eps, np.finfo(np.float32).eps, 10.0**-50
STYLE = {
    "forward": dict(color="tab:blue", marker="o", label="forward difference (6)"),
    "central": dict(color="tab:orange", marker="s", label="central difference"),
    "complex": dict(color="tab:green", marker="^", label="complex step (7)"),
    "mp-central": dict(color="tab:red", marker="v", label="central, 50 digits"),
    "mp-complex": dict(color="tab:purple", marker="D", label="complex step, 50 digits"),
}
SLOPES = {"forward": 1, "central": 2, "complex": 2, "mp-central": 2, "mp-complex": 2}


def _positive(values):
    """Errors as floats with exact zeros and missing points hidden (log axes)."""
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    v[v <= 0] = np.nan
    return v


def save_figure(fig, folder, name):
    """PNG for the screen and PDF (vector) for the report; returns both paths."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    for path, options in zip(paths, ({"dpi": 130}, {})):  # a reader (the report) never sees half a figure
        atomic_write(path, lambda tmp, path=path, options=options: fig.savefig(
            tmp, format=path.suffix[1:], bbox_inches="tight", **options))
    plt.close(fig)
    return paths


def _slope_guide(ax, h, error, slope, color):
    """A dashed line of the predicted slope through the curve's truncation branch."""
    h, error = np.asarray(h, float), _positive(error)
    ok = np.isfinite(error) & (error < 1e-2) & (error > 1e3 * np.nanmin(error))
    ok &= h > h[np.nanargmin(error)]
    if not ok.any():
        return
    k = np.nonzero(ok)[0][len(np.nonzero(ok)[0]) // 2]
    hh = np.array([h[k] * 10, h[k] / 100])
    # drawn a factor 100 above the curve, so that it does not hide under it
    line = 100 * error[k] * (hh / h[k]) ** slope
    ax.plot(hh, line, "--", color=color, lw=1.2)
    ax.text(hh[1], line[1], f" {slope}", color=color, fontsize=8, va="center")


def error_vs_step(curves, quantity, folder):
    """All estimators of one quantity: relative error against h, with predictions."""
    fig, (near, far) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for name, curve in curves.items():
        h, error = np.asarray(curve["h"]), _positive(curve["error"])
        style = STYLE[name]
        for ax in (near, far):
            if ax is far and "complex" not in name:
                continue
            ax.loglog(h, error, ms=3, lw=1, color=style["color"], marker=style["marker"],
                      label=f"{style['label']} (slope {SLOPES[name]})")
        _slope_guide(near, h, curve["error"], SLOPES[name], style["color"])
    for x, text in ((np.sqrt(EPS64), r"$\sqrt{\epsilon}$"), (EPS64 ** (1 / 3), r"$\epsilon^{1/3}$"),
                    (EPS_MP ** (1 / 3), r"$\epsilon_{50}^{1/3}$")):
        near.axvline(x, color="grey", ls=":", lw=1)
        near.text(x, 3, text, rotation=90, va="top", ha="right", fontsize=9, color="grey")
    for ax in (near, far):
        ax.axhline(EPS64, color="grey", lw=0.6)
        ax.invert_xaxis()
        ax.set_xlabel("step h")
        ax.grid(True, which="major", alpha=0.3)
    near.set_xlim(1, 1e-42)
    near.set_ylim(1e-55, 10)
    far.set_xlim(1, 1e-300)
    far.set_ylim(1e-55, 10)
    near.set_ylabel(f"relative error of {quantity}")
    near.set_title(f"{quantity}: every estimator (dashed: predicted slopes; "
                   "dotted: predicted best steps)", fontsize=9)
    far.set_title("complex steps down to 1e-300 (no cancellation)", fontsize=10)
    near.legend(fontsize=7, loc="lower left")
    return save_figure(fig, folder, f"error_vs_step_{quantity}")


def precision_ladder(ladder, folder):
    """The gradient's estimators in float32, float64 and 50 digits on one axis."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for dtype, curves in ladder.items():
        for name, curve in curves.items():
            if dtype == "float32" and name.startswith("mp-"):
                continue
            style = STYLE[name]
            ls = "--" if dtype == "float32" else "-"
            label = style["label"] + (" [float32]" if dtype == "float32" else "")
            ax.loglog(curve["h"], _positive(curve["error"]), ls=ls, ms=3, lw=1, color=style["color"],
                      marker=style["marker"], label=label, mfc="none" if dtype == "float32" else None)
    for eps, name in ((EPS32, "float32"), (EPS64, "float64"), (EPS_MP, "50 digits")):
        ax.axhline(eps, color="grey", lw=0.6, ls=":")
        ax.text(1e-40, eps * 2, f"eps {name}", fontsize=7, color="grey")
    ax.set_xlim(1, 1e-42)
    ax.set_ylim(1e-55, 10)
    ax.set_xlabel("step h")
    ax.set_ylabel("relative error of g.p")
    ax.set_title("precision ladder: the same estimators in float32, float64, 50 digits", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6.5, loc="lower left", ncol=2)
    return save_figure(fig, folder, "precision_ladder")


def taylor_figure(taylor, folder):
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    colors = ["tab:blue", "tab:orange", "tab:green"]
    labels = [r"$|F(w+hp)-F(w)|$", r"$\ldots - h\,g^\top p$", r"$\ldots - \frac{h^2}{2} p^\top Hp$"]
    for dtype, result in taylor.items():
        h = np.asarray(result["h"])
        for k, (r, window, s) in enumerate(zip(result["remainders"], result["windows"], result["slopes"])):
            r = _positive(r)
            ls = "-" if dtype == "float64" else ":"
            slope = "n/a" if s is None else f"{s:.3f}"
            ax.loglog(h, r, ls=ls, lw=1, color=colors[k], label=f"{labels[k]} [{dtype}] slope {slope}")
            window = np.asarray(window, dtype=int)
            if window.size:
                ax.loglog(h[window], r[window], "o", ms=4, color=colors[k], mfc="none")
    ax.invert_xaxis()
    ax.set_xlabel("step h")
    ax.set_ylabel("Taylor remainder")
    ax.set_title("Taylor test: circles mark the windows the code chose; expected slopes 1, 2, 3",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return save_figure(fig, folder, "taylor")


def detection_figure(detection, folder):
    quantities = list(detection)
    fig, axes = plt.subplots(len(quantities), 1, figsize=(8, 1.6 * len(quantities) + 0.6), sharex=True)
    for ax, quantity in zip(np.atleast_1d(axes), quantities):
        rows, grid = [], []
        for check, entries in detection[quantity].items():
            for entry, row in entries.items():
                rows.append(f"{check}, {entry}")
                grid.append(row["caught"])
        ax.imshow(np.array(grid, dtype=float), cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_title(f"{quantity}: one entry off by a relative delta (green = caught)", fontsize=9)
    deltas = [10.0**-k for k in range(2, 15)]
    ax.set_xticks(range(len(deltas)), [f"1e-{k}" for k in range(2, 15)], fontsize=7)
    ax.set_xlabel("relative error delta put into one entry")
    return save_figure(fig, folder, "detection_power")


def gauss_newton_gap_figure(gap, folder):
    fig, ax = plt.subplots(figsize=(6, 3.8))
    residual, rel = np.asarray(gap["residual_norm"]), np.asarray(gap["relative_gap"])
    moving = np.asarray(gap["scales"]) > 0
    ax.loglog(residual[moving], rel[moving], "o-", label=r"$\|H-G\| / \|H\|$")
    ax.loglog(residual[moving], rel[moving][0] * residual[moving] / residual[moving][0], "--",
              color="grey", label="slope 1")
    ax.axhline(rel[~moving][0], color="tab:green", ls=":", label=f"zero residual: {rel[~moving][0]:.1e}")
    ax.set_xlabel(r"residual $\|z^L - x\|$")
    ax.set_ylabel("relative gap")
    ax.set_title("G -> H as the residual vanishes (bilinear 5-2-5 net)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, folder, "gauss_newton_gap")


def all_figures(curves, folder):
    """Every figure the curves allow; returns the written paths."""
    paths = []
    for quantity, quantity_curves in curves.get("sweeps", {}).items():
        paths += error_vs_step(quantity_curves, quantity, folder)
    if curves.get("ladder"):
        paths += precision_ladder(curves["ladder"], folder)
    if curves.get("taylor"):
        paths += taylor_figure(curves["taylor"], folder)
    if curves.get("detection"):
        paths += detection_figure(curves["detection"], folder)
    if curves.get("gauss_newton_gap"):
        paths += gauss_newton_gap_figure(curves["gauss_newton_gap"], folder)
    return paths
