"""Figures of the MNIST study, drawn from its summary and run records (PNG + PDF)."""

import json
import math
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from checks.plots import save_figure  # noqa: E402
from studies import pca  # noqa: E402
from studies.protocol import HF_DEFAULT, OPTIMIZERS, figure_slug  # noqa: E402
from studies.store import load_arrays  # noqa: E402

COLORS = dict(zip(OPTIMIZERS, ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]))


def _history(folder, key):
    return json.loads((pathlib.Path(folder) / "runs" / f"{key}.json").read_text())["history"]


def _label(opt, config):
    if opt == "hf":
        changed = "".join(f", {k} {v}" for k, v in config["hf"].items() if HF_DEFAULT[k] != v)
        return f"hf (batch {config['minibatch_size']}{changed})"
    return f"{opt} (step {config['step_size']:g}, batch {config['minibatch_size']})"


def convergence(summary, folder, arch, out):
    """Validation loss of the tuned optimizers against epochs, wall-clock seconds and examples
    processed (gradient and curvature examples both count): the median over the seed runs, and
    their min-max band."""
    fig, (by_epoch, by_time, by_work) = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    n_train = summary["data"]["train"]  # passes over the training set -> examples
    for opt, tuned in summary["architectures"][arch]["tuned"].items():
        histories = [_history(folder, key) for key in tuned["seed_keys"]]
        histories = [h for h in histories if h["validation_loss"]]
        if not histories:
            continue
        length = min(len(h["validation_loss"]) for h in histories)  # a diverged seed stops early
        losses = np.array([[h["initial"]["validation_loss"]] + h["validation_loss"][:length] for h in histories])
        low, median, high = losses.min(0), np.median(losses, 0), losses.max(0)
        epochs = np.arange(length + 1)
        seconds = np.median([[0] + h["seconds"][:length] for h in histories], 0)
        examples = np.median([[p * n_train for p in h["passes"][:length]] for h in histories], 0)
        color = COLORS[opt]
        by_epoch.plot(epochs, median, "-o", ms=3, color=color, label=_label(opt, tuned["config"]))
        by_epoch.fill_between(epochs, low, high, color=color, alpha=0.2, lw=0)
        by_time.plot(seconds, median, "-o", ms=3, color=color)
        by_time.fill_between(seconds, low, high, color=color, alpha=0.2, lw=0)
        by_work.plot(examples, median[1:], "-o", ms=3, color=color)
        by_work.fill_between(examples, low[1:], high[1:], color=color, alpha=0.2, lw=0)
    for ax in (by_epoch, by_time, by_work):
        ax.axhline(summary["pca2"]["validation_loss"], color="black", ls="--", lw=1, label="PCA-2")
        ax.grid(True, alpha=0.3)
    top = summary["mean_only_test_loss"] * 1.15
    by_epoch.set_ylim(min(summary["pca2"]["validation_loss"] * 0.6, by_epoch.get_ylim()[0]), top)
    by_epoch.set_xlabel("epoch")
    by_time.set_xlabel("training seconds (median)")
    by_work.set_xlabel("examples processed (gradient + curvature)")
    by_work.set_xscale("log")
    by_epoch.set_ylabel("validation loss F (1)")
    by_epoch.legend(fontsize=7)
    fig.suptitle(f"{arch}: tuned optimizers, median and min-max over {summary['seeds']} seeds "
                 f"(dashed: PCA-2 = {summary['pca2']['validation_loss']:.2f})", fontsize=10)
    return save_figure(fig, out, f"convergence_{figure_slug(arch)}")


def tuning(summary, arch, out):
    """Final validation loss over each optimizer's grid (x marks a diverged run)."""
    fig, (steps, batches) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for opt, tuned in summary["architectures"][arch]["tuned"].items():
        grid = tuned["grid"]
        middle = sorted((g for g in grid if g["step_size"] is not None
                         and g["minibatch_size"] == grid[0]["minibatch_size"]), key=lambda g: g["step_size"])
        ok = [g for g in middle if not g["diverged"]]
        steps.plot([g["step_size"] for g in ok], [g["final_validation_loss"] for g in ok], "-o",
                   color=COLORS[opt], label=opt)
        for g in middle:
            if g["diverged"]:
                steps.plot(g["step_size"], summary["mean_only_test_loss"] * 1.1, "x", color=COLORS[opt], ms=8)
        best_step = tuned["config"]["step_size"]
        at_best = sorted([g for g in grid if g["step_size"] == best_step and not g["diverged"]
                          and g.get("hf") in (None, HF_DEFAULT)], key=lambda g: g["minibatch_size"])
        batches.plot([g["minibatch_size"] for g in at_best], [g["final_validation_loss"] for g in at_best], "-o",
                     color=COLORS[opt], label=f"{opt}" + (f" (step {best_step:g})" if best_step else ""))
    for ax in (steps, batches):
        ax.set_xscale("log")
        ax.axhline(summary["pca2"]["validation_loss"], color="black", ls="--", lw=1)
        ax.grid(True, alpha=0.3)
    steps.set_ylim(summary["pca2"]["validation_loss"] * 0.6, summary["mean_only_test_loss"] * 1.2)
    steps.set_xlabel("step size (x = diverged; the grid grows past an edge that holds the best)")
    batches.set_xlabel("minibatch size (at the best step)")
    steps.set_ylabel(f"validation loss after {summary['epochs']} epochs")
    steps.legend(fontsize=7)
    batches.legend(fontsize=7)
    fig.suptitle(f"{arch}: tuning on the validation set (seed 0)", fontsize=10)
    return save_figure(fig, out, f"tuning_{figure_slug(arch)}")


def hf_diagnostics(summary, folder, arch, out):
    """Per step of the tuned HF run: lambda, rho, CG iterations and the iterate backtracking chose."""
    h = _history(folder, summary["architectures"][arch]["tuned"]["hf"]["key"])
    return hf_steps(h, f"{arch}: the tuned HF run, step by step", out, f"hf_{figure_slug(arch)}")


def hf_steps(h, title, out, name):
    """An HF run's history step by step: lambda, rho, CG iterations and the iterate backtracking chose."""
    steps = np.arange(1, len(h.get("damping", [])) + 1)
    fig, (damping, ratio, cg) = plt.subplots(1, 3, figsize=(13, 3.6))
    damping.semilogy(steps, h.get("damping", []), "-o", ms=3, color=COLORS["hf"])
    damping.set_title("damping lambda", fontsize=9)
    rho = [np.nan if r is None else r for r in h.get("reduction_ratio", [])]
    ratio.plot(steps, rho, "-o", ms=3, color=COLORS["hf"])
    for level in (0.25, 0.75):
        ratio.axhline(level, color="gray", ls=":", lw=1)
    ratio.set_ylim(-1, 1.5)
    ratio.set_title("reduction ratio rho (dotted: 1/4, 3/4)", fontsize=9)
    cg.plot(steps, h.get("cg_iterations", []), "-o", ms=3, color=COLORS["hf"], label="CG iterations")
    cg.plot(steps, h.get("backtrack_iteration", []), "s", ms=3, color="black", label="iterate chosen")
    cg.legend(fontsize=7)
    cg.set_title("CG iterations per step", fontsize=9)
    for ax in (damping, ratio, cg):
        ax.set_xlabel("HF step")
        ax.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, out, name)


def long_budget(result, folder, out):
    """The long-budget comparison: validation loss against training seconds, and HF's steps."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    trained, histories = [], {}
    for role in ("hf", "first_order"):
        run = result[role]
        opt = run["config"]["optimizer"]
        h = histories[role] = _history(folder, run["key"])
        ax.plot([0.0] + h["seconds"], [h["initial"]["validation_loss"]] + h["validation_loss"], "-o", ms=2,
                color=COLORS[opt], label=_label(opt, run["config"]))
        trained += [v for v in h["validation_loss"] if math.isfinite(v)]
    if trained:
        # the initial loss is several times the trained ones: scaled to it, the runs' difference is a hair
        # (so the axis is linear too: the trained range is narrow)
        ax.set_ylim(0.97 * min(trained), 1.05 * max(trained))
    equal = result["equal_seconds"]
    if equal:
        ax.axvline(equal["seconds"], color="gray", ls=":", lw=1, label="equal seconds")
    ax.set_xlabel("training seconds")
    ax.set_ylabel("validation loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{result['architecture']}: planned for about {result['minutes']:g} min each "
                 "(the initial loss is off the top)", fontsize=9)
    slug = figure_slug(result["architecture"])
    return save_figure(fig, out, f"long_budget_{slug}") + hf_steps(
        histories["hf"], f"{result['architecture']}: the long HF run, step by step", out,
        f"long_budget_hf_{slug}")


def codes(summary, folder, dataset, arch, out):
    """2-D codes of the test digits coloured by digit: initial weights, trained (best median), PCA-2."""
    best = summary["architectures"][arch]["best"]
    arrays = load_arrays(folder, summary["architectures"][arch]["tuned"][best]["key"])
    panels = [("initial weights", arrays["codes_initial"]), (f"trained ({best}, seed 0)", arrays["codes_final"]),
              ("PCA-2 projection", pca.codes(pca.fit(dataset.train), dataset.test))]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, (title, c) in zip(axes, panels):
        scatter = ax.scatter(c[0], c[1], c=dataset.test_labels, cmap="tab10", s=5, vmin=-0.5, vmax=9.5)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(scatter, ax=axes, ticks=range(10), label="digit", fraction=0.02)
    fig.suptitle(f"{arch}: middle-layer codes of the test digits", fontsize=10)
    return save_figure(fig, out, f"codes_{figure_slug(arch)}")


def reconstructions(summary, folder, dataset, out):
    """A few test digits: original, PCA-2, and each architecture's best optimizer (seed 0)."""
    n = 8
    rows = [("original", dataset.test[:, :n]),
            ("PCA-2", pca.reconstruct(pca.fit(dataset.train), dataset.test[:, :n]))]
    for arch, result in summary["architectures"].items():
        key = result["tuned"][result["best"]]["key"]
        rows.append((f"{arch}\n({result['best']})", load_arrays(folder, key)["reconstructions"][:, :n]))
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 1.1, len(rows) * 1.2))
    for r, (label, images) in enumerate(rows):
        for k in range(n):
            ax = axes[r, k]
            ax.imshow(np.clip(images[:, k], 0, 1).reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    return save_figure(fig, out, "reconstructions")


def all_figures(summary, folder, dataset, out):
    paths = []
    for arch in summary["architectures"]:
        paths += convergence(summary, folder, arch, out)
        paths += tuning(summary, arch, out)
        paths += hf_diagnostics(summary, folder, arch, out)
        paths += codes(summary, folder, dataset, arch, out)
    paths += reconstructions(summary, folder, dataset, out)
    return paths
