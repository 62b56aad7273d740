"""Build the PDF report from the lab's records (Typst, from PyPI: no TeX needed).

Every number in the report is read from a record written by ``python -m
checks``, ``python -m studies``, ``python -m studies.synthetic`` or ``python -m
ae.bench``; nothing is recomputed or retyped here.  A missing or stale record
(made by another code version or in another mode) stops the build with the
command that makes it; a stale benchmark record is left out instead.
"""

import contextlib
import fcntl
import json
import pathlib
import shutil
import sys

from checks import records as check_records
from checks.records import group_records
from studies import bench as engine_bench
from studies import long_budget, protocol, store

HERE = pathlib.Path(__file__).resolve().parent


class ReportError(RuntimeError):
    """Records are missing or stale; the message says which and how to make them."""


def record_paths(results, full=False):
    results = pathlib.Path(results)
    return {
        "checks": results / ("checks" if full else "checks-quick") / "records.json",
        "study": results / ("study" if full else "study-quick") / "summary.json",
        "synthetic": results / "synthetic.json",
    }


def commands(full=False):
    return {
        "checks": "python -m checks" + ("" if full else " --quick"),
        "study": "python -m studies" + ("" if full else " --quick"),
        "synthetic": "python -m studies.synthetic",
    }


def load_records(results, full=False):
    """{name: record}, or ReportError naming every missing or stale one."""
    paths, make = record_paths(results, full), commands(full)
    expected = {"checks": check_records.code_version(), "study": store.code_version(),
                "synthetic": store.code_version()}
    loaded, problems = {}, []
    for name, path in paths.items():
        if not path.exists():
            problems.append(f"{name}: {path} is missing; make it with `{make[name]}`")
            continue
        record, problem = read_json_object(path)
        if problem:
            problems.append(f"{name}: {path} {problem}; remake it with `{make[name]}`")
            continue
        version = (record.get("meta") if isinstance(record.get("meta"), dict) else record).get("code_version")
        if version != expected[name]:
            problems.append(f"{name}: {path} was written by code version {version}, the code is now "
                            f"{expected[name]}: stale; remake it with `{make[name]}`")
            continue
        mode = record.get("meta", {}).get("quick", None) if name == "checks" else record.get("mode")
        wanted = {"checks": not full, "study": "full" if full else "quick"}.get(name)
        if wanted is not None and mode != wanted:
            problems.append(f"{name}: {path} was made in another mode; remake it with `{make[name]}`")
            continue
        if name == "study":
            problems += [f"study: {p}; remake it with `{make[name]}`" for p in study_data_problems(record, path.parent)]
        if name == "checks":
            found = check_records.verdict_problems(record.get("records", []))
            problems += [f"checks: {path}: {p}; remake it with `{make[name]}`" for p in found[:5]]
            if found:
                continue
        loaded[name] = record
    if problems:
        raise ReportError("cannot build the report:\n  " + "\n  ".join(problems))
    return loaded, paths


def read_json_object(path):
    """(the JSON object in ``path``, None) or (None, what is wrong with the file)."""
    try:
        record = json.loads(pathlib.Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        return None, f"is not UTF-8 text ({error.reason} at byte {error.start})"
    except json.JSONDecodeError as error:
        return None, f"is not valid JSON ({error})"
    except OSError as error:
        return None, f"cannot be read ({error.strerror or error})"
    if not isinstance(record, dict) or not record:
        return None, f"holds {json.dumps(record)[:40]} where a record (a JSON object) belongs"
    return record, None


def study_data_problems(summary, folder):
    """Every way the study's tuned runs disagree with its summary about the data."""
    data = summary.get("data") or {}
    fingerprint, problems = data.get("fingerprint"), []
    if fingerprint is None:
        return [f"{folder / 'summary.json'} does not say which data its runs used"]
    for arch, result in (summary.get("architectures") or {}).items():
        for opt, tuned in result.get("tuned", {}).items():
            path = folder / "runs" / f"{tuned.get('key')}.json"
            run, problem = read_json_object(path)
            if problem:
                problems.append(f"{arch} {opt}: the run record {path} {problem}")
                continue
            theirs = (run.get("data") or {})
            if theirs.get("fingerprint") != fingerprint or tuned.get("data_fingerprint") != fingerprint:
                problems.append(f"{arch} {opt}: the run {path.name} was trained on {theirs.get('name')} "
                                f"(fingerprint {theirs.get('fingerprint')}), the summary is of {data.get('name')} "
                                f"(fingerprint {fingerprint})")
    return problems


# --- Typst helpers -----------------------------------------------------------------------

def esc(text):
    """Plain text for Typst markup."""
    out = []
    for ch in str(text):
        out.append("\\" + ch if ch in "\\#$*_<>@[]`~/=+-" else ch)
    return "".join(out)


def code(text):
    """Monospace text (raw: no markup inside, so only the string quotes need care)."""
    return '#raw("' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '")'


def fixed(x, decimals=3):
    return "-" if x is None else f"{x:.{decimals}f}"


def num(x, digits=2):
    if x is None:
        return "-"
    if isinstance(x, int):
        return str(x)
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e4:
        return f"{x:.{digits + 2}g}"
    return f"{x:.{digits - 1}e}".replace("e-0", "e-").replace("e+0", "e+")


def table(header, rows, align=None):
    columns = len(header)
    align = align or ["left"] * columns
    cells = ", ".join(f"[*{esc(h)}*]" for h in header)
    body = ",\n  ".join(", ".join(f"[{c}]" for c in row) for row in rows)
    return (f"#table(columns: {columns}, align: ({', '.join(align)},), stroke: 0.4pt + luma(180),\n"
            f"  inset: 4pt,\n  {cells},\n  {body})\n")


def figure(path, caption, width="100%"):
    return f'#figure(image("{path}", width: {width}), caption: [{caption}])\n'


# --- sections ---------------------------------------------------------------------------

def verification_section(checks, fig):
    records, meta = checks["records"], checks["meta"]
    nets = sorted({(r["net"], r.get("architecture", {}).get("params")) for r in records if "architecture" in r})
    out = ["= Verification: every derivative checked independent ways\n",
           f"Produced by {code(meta['command'])} (seed {meta['seed']}, {num(meta['seconds'], 3)} s, "
           f"Python {meta['python']}, numpy {meta['numpy']}, mpmath {meta['mpmath']}); "
           f"{len(records)} records. Nets (widths with activation letters l, s, t, r, k for linear, "
           "sigmoid, tanh, ReLU, LeakyReLU; M parameters): "
           + "; ".join(f"{esc(n)} (M = {p})" for n, p in nets) + ".\n\n",
           "Errors of the directional derivative $g^T p$ are measured relative to $norm(g) norm(p)$, "
           "errors of vectors relative to their norm. _worst_ is the largest measured error over all nets "
           "of a row, _target_ the threshold of the verdict.\n\n"]
    rows = []
    for row in group_records(records):
        verdicts = ", ".join(f"{n} {v}" for v, n in row["verdicts"].items())
        rows.append([esc(row["check"]), esc(row["quantity"]), esc(row["dtype"]), num(row["worst"]),
                     num(row["target"], 1), esc(verdicts)])
    out.append(table(["check", "quantity", "number type", "worst", "target", "verdicts"], rows,
                     ["left", "left", "left", "right", "right", "left"]))
    failed = [r for r in records if r["verdict"] == "fail"]
    cannot = [r for r in records if r["verdict"] == "cannot run"]
    out.append(f"\n{len(failed)} checks failed. {len(cannot)} could not run; grouped by the reason they give:\n\n")
    reasons = {}
    for r in cannot:
        reasons.setdefault(r["reason"], []).append(f"{r['check']} ({r['quantity']}) on {r['net']}")
    for reason, which in reasons.items():
        out.append(f"- _{esc(reason)}_: {esc('; '.join(which))}.\n")
    out.append("\n")
    out.append("== Error against the step\n")
    out.append("Each estimator's relative error against the engine, over the step $h$. Forward differences "
               "(6) fall like $h$ until round-off $epsilon slash h$ takes over near $sqrt(epsilon)$; central "
               "differences like $h^2$ down to $epsilon^(2 slash 3)$ near $h = epsilon^(1 slash 3)$; the "
               "complex step (7) has no subtraction, so it stays at round-off for every $h$ down to 1e-300. "
               "The 50-digit curves compare 50-digit estimators with the engine run at 50 digits.\n\n")
    for quantity in ("gradient", "Hv", "GNv"):
        out.append(figure(f"{fig}/error_vs_step_{quantity}.pdf",
                          f"{esc(quantity)}: relative error of every estimator against $h$ (main net)."))
    out.append(figure(f"{fig}/precision_ladder.pdf", "The precision ladder: the gradient's estimators in "
                      "float32 (hollow, dashed), float64 and 50 digits.", "85%"))
    out.append("== Taylor test\n")
    out.append("Remainders of order 1, 2, 3 over steps that halve, fitted on a window the code finds: the "
               "smallest steps whose remainder is 100 times above round-off, below the nearest ReLU kink.\n\n")
    rows = [[esc(r["net"]), esc(r["dtype"]), esc(r["quantity"]), num(r.get("slope"), 4),
             num(r.get("predicted")), esc(r["verdict"])]
            for r in records if r["check"] == "taylor slope"]
    out.append(table(["net", "type", "remainder", "fitted slope", "expected", "verdict"], rows,
                     ["left", "left", "left", "right", "right", "left"]))
    out.append(figure(f"{fig}/taylor.pdf", "Taylor remainders (main net), float64 and 50 digits.", "85%"))
    out.append("== Dense matrices\n")
    rows = [[esc(r["net"]), esc(r["check"]), esc(r.get("estimator", "")), num(r["measured"]),
             num(r.get("threshold"), 1), esc(r["verdict"])]
            for r in records if r["check"].startswith(("dense", "symmetry (dense)", "G positive", "G = H"))]
    out.append(table(["net", "check", "comparison", "measured", "target", "verdict"], rows,
                     ["left", "left", "left", "right", "right", "left"]))
    eig = [r for r in records if r["check"] == "H eigenvalues"]
    out.append("\nEigenvalues of $H$ (indefinite in general): " + "; ".join(
        f"{esc(r['net'])}: {r['measured']} negative, range [{num(r['eigenvalue_range'][0])}, "
        f"{num(r['eigenvalue_range'][1])}]" for r in eig) + ".\n\n")
    gap = [r for r in records if r["check"].startswith("G -> H")]
    out.append("$G -> H$ as the residual vanishes: " + "; ".join(
        f"{esc(r['quantity'])} {num(r['measured'])}" + (f" (slope {num(r['slope'], 4)})" if "slope" in r else "")
        + f", {esc(r['verdict'])}" for r in gap) + ".\n")
    out.append(figure(f"{fig}/gauss_newton_gap.pdf", "The gap between $G$ and $H$ falls linearly with the "
                      "residual and reaches round-off at zero residual.", "70%"))
    out.append("== Detection power\n")
    out.append("One entry of the engine's result is put off by a relative $delta$ = 1e-2 ... 1e-14; the table "
               "gives the smallest $delta$ such that every larger one was caught. _gradcheck_ applies "
               "torch.autograd.gradcheck's rule (central differences, eps 1e-6, atol 1e-5, rtol 1e-3). The claim is "
               "the full check's (ae-lab); the one-direction check is shown for comparison: its power on an entry "
               "scales with that entry's component in the random direction, so it carries no bound.\n\n")
    rows = [[esc(r["net"]), esc(r["quantity"]), esc(r["estimator"]), esc(r["entry"]),
             num(r["relative_size"]), num(r["measured"]) if r["measured"] not in (None, float("inf")) else "none",
             esc(r["verdict"])]
            for r in records if r["check"] == "detection power"]
    out.append(table(["net", "quantity", "check", "mutated entry", "entry / norm", "smallest caught", "verdict"],
                     rows, ["left", "left", "left", "left", "right", "right", "left"]))
    out.append(figure(f"{fig}/detection_power.pdf", "Caught (green) or missed (red), per $delta$.", "90%"))
    return "".join(out)


def certified_section(checks):
    """What ball arithmetic has proven, one sentence per net, from the lab's certified records."""
    from checks.certified import PREC, sentence

    found = [r for r in checks["records"] if r["check"].startswith("certified")]
    out = ["== Certified: bounds proven by ball arithmetic\n",
           "Agreement with 50 digits makes a derivative almost surely right; ball arithmetic proves it. "
           f"Every operation on a ball (python-flint's arb, {PREC} bits) returns a ball containing the exact "
           "result. The exact values come from a forward pass of the lab's own on power series of balls, "
           "$F(theta + t v)$ to order 2 in $t$, built from the net as declared (widths, activation names, "
           "bias, tying and the documented layout of $theta$) with no code of the engine: along each unit "
           "vector $e_i$ it gives the gradient entry $g_i$; polarization, "
           "$(H p)_i = (Q(e_i + p) - Q(e_i) - Q(p)) slash 2$ with $Q(v) = v^T H v$, gives every entry of "
           "$H p$; the residual's series gives $J v$, so $(G p)_i = (J e_i)^T (J p) slash N$. The engine's "
           "float64, float32 (at the weights rounded to float32) and 50-digit loss, gradient, Hv and GNv "
           "are each converted to balls exactly and compared entry by entry in balls; each sentence below "
           "gives the largest proven distance over all entries, relative to a proven lower bound of the "
           "exact vector's norm (absolute where the exact value may be 0), at the lab's seeded weights and "
           "batch, for the random directions named. For float64 the distance also splits into the "
           "round-off of the engine's own formulas (the engine run on balls) and the formulas' distance "
           "from the exact derivatives.\n\n"]
    if not found:
        return "".join(out) + "No certified records: this lab run is older than the certified estimator.\n\n"
    for net in sorted({r["net"] for r in found}):
        out.append(f"- {esc(net)}: {esc(sentence([r for r in found if r['net'] == net]))}.\n")
    return "".join(out) + "\n"


def hf_budget_line(arch, b, mode):
    """One bullet: HF against the best first-order method at equal seconds and examples; in full mode
    on the deep ReLU net, whether HF came within 5% at equal seconds."""
    line = (f"- {esc(arch)}: HF {fixed(b['hf_validation'])}; {esc(b['first_order'])} "
            f"{fixed(b['seconds']['first_order_validation'])} within HF's {num(b['seconds']['budget'], 3)} s "
            f"(HF {100 * b['seconds']['hf_over_first_order']:+.1f}%) and "
            f"{fixed(b['examples']['first_order_validation'])} within its {num(b['examples']['budget'], 3)} "
            f"examples (HF {100 * b['examples']['hf_over_first_order']:+.1f}%)")
    if mode == "full" and arch.startswith("relu"):
        met = b["seconds"]["hf_over_first_order"] <= 0.05
        line += f"; target within 5% at equal seconds: {'met' if met else 'not met'}"
    return line + ".\n"


def study_verdict(result):
    """The winner or the tie, and the rule that decided it (the CLI's sentence, for the PDF)."""
    if result["winner"] is not None:
        head = (f"*{esc(result['winner'])}* wins (median test loss {fixed(result['margin'])} below "
                f"{esc(result['runner_up'])}'s)")
    elif result["margin"] is None:
        return "no winner: every run diverged."
    else:
        head = f"a *tie* between {esc(', '.join(result['tied']))}"
    return head + (f"; decided by the {esc(result['rule'])}." if result.get("rule") else ".")


def study_section(study, fig):
    pca = study["pca2"]["test_loss"]
    data = study["data"]
    subject = "MNIST" if "MNIST" in data["name"] else f"IDX data {esc(data['fingerprint'])}"
    out = [f"= {subject}: which optimizer trains a 2-unit autoencoder best\n",
           f"Data: {esc(data['name'])}"
           + (f", from {esc(data['source'])}" if data.get("source") else "")
           + f"; fingerprint {esc(data['fingerprint'])} (a hash of every array the study used, which every run's "
           "record carries). "
           f"{data['train']} training, {data['validation']} validation and "
           f"{data['test']} test digits of {data['features']} pixels scaled to [0, 1], each set with one job: "
           "the training set trains, the validation set chooses step sizes and minibatches and nothing else, "
           "the test set scores the tuned configurations and chooses nothing. The yardstick is PCA with 2 "
           "components fitted on the training set, the optimum of a linear 784-2-784 autoencoder: test loss "
           f"*{num(pca, 3)}* in the measure of (1) (the mean image alone: {num(study['mean_only_test_loss'], 3)}). "
           f"Mode {esc(study['mode'])}: {esc(study['budget_rule'])}; L2 coefficient 1e-5. Middle layers "
           "are linear with 2 units; hidden layers tanh or ReLU; the output layer sigmoid for pixels "
           "(linear for the linear net).\n\n",
           f"*Tuning rule.* {esc(study['tuning_rule'])}.\n\n",
           f"*Cost.* {study['timing']['runs']} runs; this invocation computed {study['timing']['computed']} of "
           f"them (the others were reused records) in {num(study['timing']['wall_seconds'], 3)} s"
           + (f" on {study['timing']['workers']} local workers" if study["timing"]["workers"] else "")
           + ".\n\n",
           f"*Seeds.* Each tuned configuration ran with {study['seeds']} seeds (initial weights and minibatch "
           "order), more where a rank test of the seeds' validation losses could not tell the best method from "
           "another (one seed at a time, up to a cap); the table gives the median test loss and its range. A "
           "method wins only when a one-sided exact Mann-Whitney rank test of its seeds' test losses against "
           "each other method's gives p <= 0.05 (with 3 seeds a side: every seed below every seed of the "
           "other); the methods it cannot be told from are tied with it. One wild seed moves a rank by one, "
           "not a verdict.\n\n"]
    rows = []
    for arch, result in study["architectures"].items():
        for opt, tuned in result["tuned"].items():
            c = tuned["config"]
            median = tuned["median_test_loss"]
            mark = "*" if opt == result["winner"] else ""
            status = ("winner" if opt == result["winner"] else
                      "tie" if result["winner"] is None and opt in result["tied"] else "")
            step = num(c["step_size"]) if opt != "hf" else esc(protocol.hf_options_changed(c))
            rows.append([esc(arch), f"{mark}{esc(opt)}{mark}", step, str(c["minibatch_size"]),
                         fixed(median) if median is not None else "diverged",
                         f"{fixed(tuned['min_test_loss'])} - {fixed(tuned['max_test_loss'])}"
                         + (f" ({tuned['diverged_seeds']} diverged)" if tuned["diverged_seeds"] else ""),
                         fixed(tuned["ratio_to_pca"]), fixed(tuned["wall_seconds"], 1), status])
    out.append("#[#set text(size: 8pt)\n")  # nine columns: smaller type keeps each row on the page
    out.append(table(["architecture", "optimizer", "step (HF: options)", "batch", "test median", "test range",
                      "/ PCA-2",
                      "seconds", ""], rows,
                     ["left", "left", "right", "right", "right", "right", "right", "right", "left"]))
    out.append("]\n")
    ratios = {}
    for arch, result in study["architectures"].items():
        ratios[arch] = result["tuned"][result["best"]]["ratio_to_pca"]
        out.append(f"- {esc(arch)}: {study_verdict(result)}\n")
    linear = [a for a in ratios if a.startswith("linear")]
    nonlinear = {a: r for a, r in ratios.items() if not a.startswith("linear") and r is not None}
    if linear and ratios[linear[0]] is not None:
        r = ratios[linear[0]]
        out.append(f"\nTarget: the linear net within 1% of PCA-2 (median test loss): ratio {fixed(r, 4)}, "
                   f"{'met' if r <= 1.01 else 'not met'}. ")
    if nonlinear:
        best_arch = min(nonlinear, key=nonlinear.get)
        r = nonlinear[best_arch]
        out.append(f"Target: the best nonlinear net at most 0.8 of PCA-2: {esc(best_arch)} reaches {fixed(r)}, "
                   f"{'met' if r <= 0.8 else 'not met in this mode'}.\n\n")
    out.append("*Hessian-free at equal budgets.* HF's median final validation loss against the best "
               "first-order method's at the same training seconds and at the same examples processed "
               "(medians over the seeds):\n")
    for arch, result in study["architectures"].items():
        if result.get("hf_at_equal_budget"):
            out.append(hf_budget_line(arch, result["hf_at_equal_budget"], study["mode"]))
    out.append(f"\n*Budgets.* {esc(study['target_rule'])}. Examples count every example through a gradient "
               "or a curvature product, so HF's Gauss-Newton products are paid for.\n\n")
    rows = []
    for arch, result in study["architectures"].items():
        for opt, tuned in result["tuned"].items():
            t = tuned["time_to_target"]
            if not t or not t["reached"]:
                rows.append([esc(arch), esc(opt), num(result["target"], 3), "not reached", "-", "-", "-"])
                continue
            rows.append([esc(arch), esc(opt), num(result["target"], 3), f"{t['reached']} of {t['runs']}",
                         str(int(t["epochs"])) if float(t["epochs"]).is_integer() else fixed(t["epochs"], 1),
                         fixed(t["seconds"], 2), num(t["examples"], 3)])
    out.append(table(["architecture", "optimizer", "target", "seeds reaching", "epochs", "seconds", "examples"],
                     rows, ["left", "left", "right", "right", "right", "right", "right"]))
    out.append("\n")
    slugs = {arch: protocol.figure_slug(arch) for arch in study["architectures"]}
    for arch, slug in slugs.items():
        out.append(f"== {esc(arch)}\n")
        out.append(figure(f"{fig}/convergence_{slug}.pdf", f"{esc(arch)}: validation loss of the tuned "
                          "optimizers against epochs, training seconds and examples processed (gradient and "
                          "curvature examples both count; log scale): median over the seeds, and the band from "
                          "the lowest to the highest; dashed: PCA-2."))
        out.append(figure(f"{fig}/tuning_{slug}.pdf", f"{esc(arch)}: validation loss against step size (left; "
                          "a grid whose best point sat on an edge was extended past it) and minibatch size "
                          "at the best step (right)."))
        out.append(figure(f"{fig}/hf_{slug}.pdf", f"{esc(arch)}: the tuned Hessian-free run step by step: "
                          "the damping $lambda$, the reduction ratio $rho$ that moves it (below 1/4: "
                          "$lambda$ grows by 3/2; above 3/4: it shrinks by 2/3), and how many CG iterations "
                          "each step ran and which saved iterate backtracking kept."))
        out.append(figure(f"{fig}/codes_{slug}.pdf", f"{esc(arch)}: 2-D codes of the test digits at "
                          "the initial weights, at the trained weights of the best median (seed 0), and the "
                          "PCA-2 projection."))
    out.append(figure(f"{fig}/reconstructions.pdf", "Test digits, their PCA-2 reconstructions and "
                      "those of each architecture's best optimizer (seed 0).", "80%"))
    return "".join(out)


def synthetic_section(synthetic):
    out = ["= Optimizers on a small problem, and Hessian-free against Adam\n",
           f"Produced by {code(synthetic['command'])}: 1000 points near a curved 2-D manifold in 10 "
           f"dimensions (800 train, 200 test), a 10-6-2-6-10 tanh net, {synthetic['epochs']} epochs each (for HF "
           "an epoch is one full-batch iteration).\n\n"]
    rows = [[esc(m), f"{r['final_train_loss']:.3e}", f"{r['final_test_loss']:.3e}",
             fixed(1000 * r["seconds_per_epoch"], 2)] for m, r in synthetic["every_method"].items()]
    out.append(table(["method", "train loss", "test loss", "ms per epoch"], rows,
                     ["left", "right", "right", "right"]))
    duel = synthetic["hf_vs_adam"]
    out.append(f"\nOn the deep narrow net {esc('-'.join(map(str, duel['architecture'])))}, HF ran "
               f"{duel['hf']['epochs']} iterations, {num(duel['pass_budget'], 4)} passes over the data; Adam "
               f"(step {num(duel['adam']['step_size'])}, best of its grid) had the same number of passes. "
               f"Final train loss: HF {num(duel['hf']['final_train_loss'], 3)}, Adam "
               f"{num(duel['adam']['final_train_loss'], 3)}: *{esc(duel['winner'])}* wins.\n\n")
    return "".join(out)


# the engine's performance targets: (ratio key, label, bound, batch size of the rows it
# applies to or None for all rows)
TIMING_TARGETS = [("x_gemm_bound", "x GEMM", 1.3, 1000), ("x_torch", "x torch", 0.8, None),
                  ("x_jax", "x jax", 1.0, 1000)]


def timing_section(bench):
    """The benchmark's ratios, if a current record exists (it is optional: timings are not checks)."""
    out = ["= Timings\n"]
    if bench is None:
        return out[0] + f"No current benchmark record; {code('python -m studies.bench')} writes one.\n\n"
    versions = ", ".join(f"{name} {esc(bench.get(name) or 'not installed')}" for name in ("torch", "jax"))
    out.append(f"Produced by {code(bench['command'])} (median of {bench['rounds']} rounds, Python {bench['python']}, "
               f"numpy {bench['numpy']}, {versions}) on the "
               f"{esc('-'.join(map(str, bench['widths'])))} tanh net with biases. _x GEMM_ is the time over the "
               "measured time of the same matrix products alone; _x torch_ and _x jax_ the time over theirs "
               "(torch autograd and torch.func, JAX jit; below 1: faster) in the same run; _torch GEMM_ the time "
               "of the same products in torch's own BLAS. One machine, shared and noisy: ratios, not absolute "
               "times.\n\n")
    # (title, key, milliseconds?) of the number columns; a framework's only if it was installed
    columns = [("ms", "seconds", True), ("x GEMM", "x_gemm_bound", False)]
    if bench.get("torch"):
        columns += [("torch ms", "torch_seconds", True), ("x torch", "x_torch", False),
                    ("torch GEMM ms", "torch_gemm_bound_seconds", True)]
    if bench.get("jax"):
        columns += [("jax ms", "jax_seconds", True), ("x jax", "x_jax", False)]
    rows = [[esc(r["dtype"]), str(r["batch"]), esc(r["quantity"])]
            + [("-" if key not in r else num(1000 * r[key], 2) if ms else num(r[key])) for _, key, ms in columns]
            for r in bench["rows"]]
    out.append(table(["dtype", "B", "quantity"] + [title for title, _, _ in columns], rows,
                     ["left", "right", "left"] + ["right"] * len(columns)))
    missing = [name for name in ("torch", "jax") if not bench.get(name)]
    if missing:
        out.append(f"\n{' and '.join(missing)} not installed: {code('pip install ' + ' '.join(missing))} and "
                   f"{code('python -m studies.bench')} add them to this table.\n")
    targets = []
    for key, label, bound, batch in TIMING_TARGETS:
        ratios = [r[key] for r in bench["rows"] if key in r and batch in (None, r["batch"])]
        if ratios:
            met = sum(ratio <= bound for ratio in ratios)
            which = "all" if batch is None else f"B = {batch}"
            targets.append(f"_{esc(label)}_ at most {num(bound)} "
                           f"({esc(which)} rows): met in {met} of {len(ratios)}")
    if targets:
        out.append("\nTargets: " + "; ".join(targets) + ".\n")
    floors = [r["gemm_bound_seconds"] / r["torch_seconds"] for r in bench["rows"]
              if "torch_seconds" in r and "gemm_bound_seconds" in r]
    if floors:
        out.append(f"\nEven with every elementwise pass free, a ratio to torch cannot fall below our products' "
                   f"time over torch's whole time: that floor runs from {num(min(floors))} to {num(max(floors))}, "
                   f"and lies above 0.8 in {sum(f > 0.8 for f in floors)} of {len(floors)} rows.\n")
    m = bench["memory"]
    out.append(f"\nPeak memory of one loss + gradient at B = 1000 (float64): the call allocates "
               f"{num(m['peak_loss_grad_bytes'] / 1e6, 3)} MB at its peak; with the parameters "
               f"({num(m['parameter_bytes'] / 1e6, 3)} MB) that is {num(m['ratio'], 3)} times the forward state "
               f"(every layer's u, z, g': {num(m['forward_state_bytes'] / 1e6, 3)} MB) plus the parameters. "
               f"Of the rest, {num(m['backward_state_bytes'] / 1e6, 3)} MB are the output derivatives kept for "
               f"Hessian-vector products at the same point and {num(m['gradient_bytes'] / 1e6, 3)} MB the "
               "gradient itself.\n\n")
    return "".join(out)


def load_benchmark(results):
    path = pathlib.Path(results) / "bench.json"
    if not path.exists():
        return None
    bench, problem = read_json_object(path)
    if problem:
        raise ReportError(f"cannot build the report:\n  bench: {path} {problem}; remake it with "
                          f"`python -m studies.bench --out {path}` or delete it")
    current = bench.get("code_version") == engine_bench.code_version()
    return {**bench, "path": str(path)} if current else None


def load_long_budget(study_path, study):
    """The long-budget comparison beside the study (``python -m studies long``) if it is of this code and
    the study's data, else None: an old one is left out, as a stale benchmark is."""
    path = pathlib.Path(study_path).parent / "long-budget" / "long_budget.json"
    if not path.exists():
        return None
    long, problem = read_json_object(path)
    if problem:
        raise ReportError(f"cannot build the report:\n  long budget: {path} {problem}; remake it with "
                          "`python -m studies long` or delete it")
    current = (long.get("code_version") == store.code_version()
               and (long.get("data") or {}).get("fingerprint") == study["data"]["fingerprint"])
    return {**long, "path": str(path)} if current else None


def long_budget_section(long, fig):
    """HF against the best first-order method trained long, at equal seconds, with HF's step diagnostics."""
    head = "== Hessian-free trained long\n*HF on its home ground.* "
    if long is None:
        return (head + "Not in this report: `python -m studies long --study FOLDER --minutes M` trains the deep "
                "net's tuned HF and best first-order config long and compares them at equal seconds.\n\n")
    out = [head + f"{esc(long['architecture'])}: {esc(long['rule'])}. "
           + " ".join(esc(sentence) for sentence in long_budget.findings(long)) + "\n\n"]
    slug = protocol.figure_slug(long["architecture"])
    out.append(figure(f"{fig}/long_budget_{slug}.pdf", f"{esc(long['architecture'])}: validation loss against "
                      "training seconds of the long runs; dotted: the equal-seconds budget.", "70%"))
    out.append(figure(f"{fig}/long_budget_hf_{slug}.pdf", f"{esc(long['architecture'])}: the long HF run step by "
                      "step (as the study's HF figures)."))
    return "".join(out)


def reproduce_section(paths, full, bench):
    make = commands(full)
    rows = [[code(make[name]), code(path)] for name, path in paths.items()]
    if bench is not None:
        rows.append([code(bench["command"]), code(bench["path"])])
    return ("= How to reproduce every number\n"
            "Each table and figure above is drawn from one of these records; the commands rewrite them. "
            f"{code('python -m reports --from-records')} rebuilds this PDF from the records in seconds.\n\n"
            + table(["command", "record"], rows))


def render(records, paths, full, fig="figures"):
    title = "ae-lab report" + (" (full run)" if full else " (quick run)")
    head = (f'#set document(title: "{title}")\n'
            '#set page(paper: "a4", margin: 2cm, numbering: "1")\n'
            '#set text(size: 10pt)\n#set heading(numbering: "1.1")\n#set par(justify: true)\n'
            "#show figure: set block(breakable: false)\n"
            f"#align(center, text(17pt)[*{title}*])\n"
            "#align(center)[An autoencoder engine with exact gradients, Hessian- and Gauss-Newton-vector "
            "products in every number type; its verification; an MNIST optimizer study.]\n"
            "#outline(depth: 2)\n#pagebreak()\n")
    return (head + '#include "theory.typ"\n#pagebreak()\n'
            + verification_section(records["checks"], f"{fig}/checks") + certified_section(records["checks"])
            + "#pagebreak()\n" + study_section(records["study"], f"{fig}/study")
            + long_budget_section(records.get("long_budget"), f"{fig}/long")
            + synthetic_section(records["synthetic"]) + timing_section(records.get("bench"))
            + reproduce_section(paths, full, records.get("bench")))


def engine_section(saved):
    """The lab's findings on another implementation of the course API, from its records."""
    meta, found = saved["meta"], saved["records"]
    counts = {}
    for r in found:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    out = [f"= Examination of the engine {esc(meta['engine'])}\n",
           f"Produced by {code(meta['command'])}. The engine's weight layout was discovered by probing "
           "set_weights with unit vectors; each activation, each layer's four passes and the whole model's "
           f"loss, gradient, Hv and GNv were compared with ae's engine at 50 digits (target: normwise "
           f"relative error at most 1e-12), checks.verify ran on its loss, gradient and Hv, and its optimizers "
           "(run_sgd, run_momentum, run_rmsprop, run_adam, those it has) ran three full-batch epochs against "
           "reference step rules in float64 (target 1e-8). "
           + ", ".join(f"{n} {esc(v)}" for v, n in sorted(counts.items())) + ".\n\n"]
    configs = saved.get("summary", {}).get("configurations", [])
    if configs:
        out.append("*Nets examined*, chosen to cover the API: every activation, layers with and without bias, "
                   "square and non-square layers, depths 1 to 4, batches of one, two and more objects than the "
                   "widest layer.\n\n")
        out.append(table(["net", "what it covers"], [[esc(c["net"]), esc("; ".join(c["covers"]))] for c in configs],
                         ["left", "left"]) + "\n")
    failed = [line for line in saved["findings"] if not line.startswith(("cannot run", "note"))]
    if failed:
        out.append("*Findings*, root causes first; what follows from one is listed under it.\n")
        out += [f"  - {esc(line.strip())}\n" if line.startswith("    ") else f"- {esc(line)}\n" for line in failed]
    else:  # said only here: the page never says it under a list of failures
        out.append("*No check failed.*\n")
    notes = [line for line in saved["findings"] if line.startswith("note")]
    if notes:
        out.append("\n*Notes* (not failures):\n")
        out += [f"- {esc(line)}\n" for line in notes]
    refused = [line for line in saved["findings"] if line.startswith("cannot run")]
    if refused:
        out.append("\n*Could not run* (the engine refused the number type or lacks a piece):\n")
        out += [f"- {esc(line)}\n" for line in refused]
    rows = []
    for r in found:
        if r["verdict"] in ("pass", "fail") and r.get("check") == "engine":
            rows.append([esc(r.get("net") or "-"), esc(r.get("where", "")), esc(r["quantity"]),
                         num(r["measured"]) if r["measured"] is not None and r["measured"] != float("inf")
                         else "-", esc(r["verdict"])])
    out.append("\n" + table(["net", "where", "quantity", "error", "verdict"], rows,
                             ["left", "left", "left", "right", "left"]))
    return "".join(out)


def build_class_report(summary_path, out):
    """One PDF for a class: the summary table, then a page per submission; returns its path."""
    from checks.findings import STAGES

    saved, problem = read_json_object(summary_path)
    if problem or "submissions" not in saved:
        raise ReportError(f"cannot build the class report: {summary_path} "
                          f"{problem or 'is not a summary of python -m checks --engine on several submissions'}")
    typst = typst_module()
    folder = pathlib.Path(summary_path).parent
    rows = [[esc(s["submission"]), esc(s["status"][:40]), *[esc(s["stages"][k]) for k in STAGES],
             str(len(s["root_causes"]))] for s in saved["submissions"]]
    body = ["= A class examined\n",
            "Each submission ran in a process of its own, with a time limit, a memory limit and a fresh working "
            "directory. One row per submission, one column per stage of the examination (pass, fail, not "
            "implemented, cannot run); a page per submission follows.\n\n",
            table(["submission", "status", *STAGES, "root causes"], rows, ["left"] * (len(STAGES) + 2) + ["right"])]
    for s in saved["submissions"]:
        body.append("\n#pagebreak()\n")
        records = folder / s["submission"] / "records.json"
        found, problem = read_json_object(records) if records.exists() else (None, "is missing")
        if found and "findings" in found:
            body.append(engine_section(found))
        else:
            body.append(f"= {esc(s['submission'])}\n{esc(s['status'])}.\n")
    work = folder / "report-build"
    work.mkdir(parents=True, exist_ok=True)
    (work / "report.typ").write_text('#set document(title: "ae-lab: a class examined")\n'
                                     '#set page(paper: "a4", flipped: true, margin: 1.5cm, numbering: "1")\n'
                                     '#set text(size: 9pt)\n' + "".join(body))
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    typst.compile(str(work / "report.typ"), output=str(out), root=str(work))
    return out


def typst_module():
    """The PDF compiler, or a one-line ReportError saying which extra installs it."""
    try:
        import typst
    except ImportError:
        raise ReportError('the PDF needs typst, the report extra: pip install "ae-lab[report]"') from None
    return typst


def build_engine_report(records_path, out):
    """A PDF of ``python -m checks --engine`` records; returns its path."""
    typst = typst_module()

    saved, problem = read_json_object(records_path)
    if problem or "findings" not in saved:
        raise ReportError(f"cannot build the engine report: {records_path} "
                          f"{problem or 'is not a record of python -m checks --engine'}")
    work = pathlib.Path(records_path).parent / "report-build"
    work.mkdir(parents=True, exist_ok=True)
    title = f"ae-lab: examination of {saved['meta']['engine']}"
    (work / "report.typ").write_text(
        f'#set document(title: "{title}")\n#set page(paper: "a4", margin: 2cm, numbering: "1")\n'
        '#set text(size: 10pt)\n#set heading(numbering: "1.1")\n' + engine_section(saved))
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    typst.compile(str(work / "report.typ"), output=str(out), root=str(work))
    return out


@contextlib.contextmanager
def reading(folder, say=lambda message: print(message, file=sys.stderr, flush=True)):
    """Hold a study's folder for reading (flock LOCK_SH on its .lock, the file a study holds exclusively
    while it writes): a report is built from one consistent set of files, never from a half-written
    study; if a study holds the folder, say so and wait for it."""
    lock = pathlib.Path(folder) / ".lock"
    if not lock.exists():
        yield
        return
    with open(lock) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read().strip() or "another process"
            say(f"waiting for the study in {folder} ({holder}) to finish")
            fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(results="results", out="reports/report.pdf", full=False):
    """Write the PDF from the records; returns its path (ReportError if records are missing or stale)."""
    typst = typst_module()
    with reading(record_paths(results, full)["study"].parent):
        work = _gather(results, full)
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    typst.compile(str(work / "report.typ"), output=str(out), root=str(work))
    return out


def _gather(results, full):
    """The report's sources, copied into RESULTS/report-build: records read and figures copied at once."""
    records, paths = load_records(results, full)
    records["bench"] = load_benchmark(results)
    records["long_budget"] = load_long_budget(paths["study"], records["study"])
    work = pathlib.Path(results) / "report-build"
    if work.exists():
        shutil.rmtree(work)
    (work / "figures").mkdir(parents=True)
    shutil.copy(HERE / "theory.typ", work / "theory.typ")
    for name in ("checks", "study"):
        source = paths[name].parent / "figures"
        if not source.is_dir():
            raise ReportError(f"{name}: the figures folder {source} is missing; remake it with "
                              f"`{commands(full)[name]}`")
        shutil.copytree(source, work / "figures" / name, ignore=shutil.ignore_patterns("*.png"))
    if records["long_budget"] is not None:
        shutil.copytree(pathlib.Path(records["long_budget"]["path"]).parent / "figures", work / "figures" / "long",
                        ignore=shutil.ignore_patterns("*.png"))
    (work / "report.typ").write_text(render(records, paths, full))
    return work
