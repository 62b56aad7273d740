"""The lab's suite: every check on a small set of architectures, as records.

``run_suite`` computes; it returns the records (one dict per verdict) and
the curves the figures are drawn from.  Nothing here plots or prints.
"""

import time

import mpmath
import numpy as np

import ae
from ae import numeric
from checks import certified, dense, detection, sweeps, taylor
from checks.estimators import relative_error
from checks.records import architecture, cannot_run, describe, verdict

# widths, one activation letter per layer, bias, tied, batch; the first is the
# "main" net whose curves are drawn
QUICK = [
    ([5, 4, 2, 4, 5], "tlsl", True, False, 5),
    ([4, 3, 4], "rk", True, False, 4),
    ([5, 3, 2, 3, 5], "tlts", True, True, 4),
    ([3, 3], "l", False, False, 4),
]
FULL = QUICK + [
    ([6, 5, 3, 5, 6], "sttl", False, False, 6),
    ([4, 3, 2, 3, 4], "klrl", True, True, 5),
    ([7, 4, 7], "tl", True, False, 1),
    ([5, 2, 5], "ll", False, True, 3),
]

TARGETS = {  # float64 unless said; the lab's accuracy targets
    "complex step": 1e-14, "central best": {"gradient": 1e-9, "Hv": 1e-8, "GNv": 1e-8},
    "forward at sqrt(eps)": 1e-6, "slope": 0.1, "mp-central best": 1e-30,
    "mp-complex": 1e-45, "taylor slope": 0.05, "dense": 1e-14, "dense central": 1e-8,
    "symmetry": 1e-14, "adjoint": 1e-14, "psd": 1e-13, "float32 vs mpmath": 1e-5,
    "detection": 1e-10,
}
PREDICTED_SLOPE = {"forward": 1, "central": 2, "complex": 2, "mp-central": 2, "mp-complex": 2}
MP_DPS = 50
CERTIFIED_DIRECTIONS = 3


def build_case(spec, seed):
    """(model, inputs, weights, direction) of one lab net: seeded weights off the initial scale."""
    widths, acts, bias, tied, batch = spec
    model = ae.build(widths, acts, use_bias=bias, tied=tied)
    rng = np.random.default_rng(seed)
    w = model.init_weights(rng) + 0.3 * rng.standard_normal(model.params_number)
    inputs = rng.standard_normal((widths[0], batch))
    p = rng.standard_normal(model.params_number)
    model.set_weights(w)
    return model, inputs, w, p


def _context(model, seed, dtype="float64", precision="eps 2.2e-16", **extra):
    return {"net": describe(model), "architecture": architecture(model), "seed": seed,
            "dtype": dtype, "precision": precision, **extra}


def sweep_records(curves, quantity, context, dtype="float64"):
    """Verdicts on one quantity's error-vs-step curves."""
    records = []
    eps = float(np.finfo(dtype).eps)
    for name, curve in curves.items():
        errors = np.asarray(curve["error"], float)
        h = np.asarray(curve["h"])
        ctx = {**context, "estimator": name, "steps": [float(h.max()), float(h.min())]}
        if name.startswith("mp-"):
            ctx = {**ctx, "dtype": "mpmath", "precision": f"{MP_DPS} digits"}
        if np.isnan(errors).all():
            records.append(cannot_run(f"{name} sweep", quantity,
                                      "every step straddles a ReLU kink or underflows", ctx))
            continue
        if dtype != "float64":  # the precision ladder: facts, no verdicts
            h_best, e_best = sweeps.best_step(curve)
            records.append({"check": f"{name} sweep", "quantity": quantity, **ctx, "verdict": "info",
                            "measured": e_best, "best_step": h_best})
            continue
        if name in ("complex", "mp-complex"):
            # steps small enough for h^2 to sit below the unit roundoff, down to 1e-200
            largest = 1e-20 if name == "complex" else 1e-30
            band = (h <= largest) & (h >= 1e-200)
            threshold = TARGETS["complex step"] if name == "complex" else TARGETS["mp-complex"]
            records.append(verdict(f"{name} step", quantity, np.nanmax(errors[band]), threshold,
                                   {**ctx, "steps": [largest, 1e-200]}))
        else:
            h_best, e_best = sweeps.best_step(curve)
            if name == "forward":
                h_at, e_at = sweeps.error_at(curve, np.sqrt(eps))
                records.append(verdict("forward at sqrt(eps)", quantity, e_at,
                                       TARGETS["forward at sqrt(eps)"], {**ctx, "steps": [h_at]}))
            else:
                threshold = (TARGETS["central best"][quantity] if name == "central"
                             else TARGETS["mp-central best"])
                records.append(verdict(f"{name} best", quantity, e_best, threshold,
                                       {**ctx, "steps": [h_best]}))
        floor = 10.0 ** -MP_DPS if name.startswith("mp-") else eps
        slope = sweeps.truncation_slope(curve, floor)
        if np.isnan(slope):
            records.append(cannot_run(f"{name} slope", quantity,
                                      "fewer than 3 steps in the truncation regime (none at all "
                                      "when the quantity is a low-degree polynomial in w, or every "
                                      "larger step straddles a kink)", ctx))
        else:
            records.append(verdict(f"{name} slope", quantity, abs(slope - PREDICTED_SLOPE[name]),
                                   TARGETS["slope"], ctx, slope=slope,
                                   predicted=PREDICTED_SLOPE[name]))
    return records


def taylor_records(result, context):
    records = []
    for order, (s, window) in enumerate(zip(result["slopes"], result["windows"]), start=1):
        label = ["F(w+hp)-F", "-h g.p", "-h^2/2 p.Hp"][order - 1]
        ctx = {**context, "estimator": label}
        if np.isnan(s):
            records.append(cannot_run("taylor slope", f"order {order}",
                                      "fewer than 4 steps above round-off and below the nearest kink "
                                      "(a remainder at round-off for every h: the expansion is exact "
                                      "at this order, as for a quadratic loss)", ctx))
        else:
            h = result["h"][window]
            records.append(verdict("taylor slope", f"order {order}", abs(s - order),
                                   TARGETS["taylor slope"], {**ctx, "steps": [float(h.max()), float(h.min())]},
                                   slope=s, predicted=order))
    return records


def dense_records(model, inputs, w, context):
    Hs, Gs = dense.hessians(model, inputs, w, dps=MP_DPS)
    records = []
    for name, H in Hs.items():
        if name == "mpmath":
            continue
        threshold = TARGETS["dense central"] if name == "central difference" else TARGETS["dense"]
        records.append(verdict("dense H", "H", dense.relative_frobenius(H, Hs["mpmath"]), threshold,
                               {**context, "estimator": f"{name} vs mpmath"}))
    records.append(verdict("dense G", "G", dense.relative_frobenius(Gs["GN products"], Gs["J^T J / N"]),
                           TARGETS["dense"], {**context, "estimator": "GN products vs J^T J/N (complex-step J)"}))
    records.append(verdict("dense G", "G", dense.relative_frobenius(Gs["GN products"], Gs["mpmath"]),
                           TARGETS["dense"], {**context, "estimator": "GN products vs mpmath"}))
    for name, A in (("H", Hs["Hv products"]), ("G", Gs["GN products"])):
        records.append(verdict("symmetry (dense)", name, dense.asymmetry(A), TARGETS["symmetry"],
                               {**context, "estimator": "||A - A^T|| / ||A||"}))
    violation, eig_G = dense.psd_violation(Gs["GN products"])
    records.append(verdict("G positive semi-definite", "G", violation, TARGETS["psd"],
                           {**context, "estimator": "max(0, -lambda_min / lambda_max)"},
                           eigenvalue_range=[float(eig_G[0]), float(eig_G[-1])]))
    eig_H = np.linalg.eigvalsh((Hs["Hv products"] + Hs["Hv products"].T) / 2)
    records.append({"check": "H eigenvalues", "quantity": "H", **context, "verdict": "info",
                    "measured": int((eig_H < -1e-12 * abs(eig_H).max()).sum()),
                    "estimator": "number of negative eigenvalues",
                    "eigenvalue_range": [float(eig_H[0]), float(eig_H[-1])]})
    if len(model.layers) == 1 and isinstance(model.layers[0].afun, ae.LinearActivationFunction):
        records.append(verdict("G = H (one linear layer)", "G - H",
                               dense.relative_frobenius(Gs["GN products"], Hs["Hv products"]),
                               TARGETS["dense"], {**context, "estimator": "||G - H|| / ||H||"}))
    return records


def identity_records(model, inputs, w, context, seed):
    """Adjoint and symmetry identities with random vectors (any size of net)."""
    rng = np.random.default_rng(seed + 1)
    u_out = rng.standard_normal(inputs.shape)
    u, v = rng.standard_normal((2, model.params_number))
    model.set_weights(w)
    model.compute_loss(inputs)
    model.net.set_direction(v)
    Jv = model.net.compute_Rp_outputs()
    JTu = model.net.compute_loss_grad(u_out, remember=False)
    scale = np.linalg.norm(u_out) * np.linalg.norm(Jv) + np.linalg.norm(JTu) * np.linalg.norm(v)
    records = [verdict("adjoint u.(Jv) = (J^T u).v", "J", abs((u_out * Jv).sum() - JTu @ v) / scale,
                       TARGETS["adjoint"], {**context, "estimator": "R-forward vs backward"})]
    for name, product in (("H", model.compute_hessvec), ("G", model.compute_gaussnewtonvec)):
        Av, Au = product(v), product(u)
        gap = abs(u @ Av - v @ Au) / (np.linalg.norm(u) * np.linalg.norm(Av))
        records.append(verdict("symmetry u.(Av) = v.(Au)", name, gap, TARGETS["symmetry"],
                               {**context, "estimator": "random u, v"}))
    return records


def float32_records(model, inputs, w, p, context):
    def results(x, v, d):
        model.set_weights(v)
        loss, grad = model.compute_loss(x)
        return {"loss": loss, "gradient": grad, "Hv": model.compute_hessvec(d),
                "GNv": model.compute_gaussnewtonvec(d)}

    single = results(*(a.astype(np.float32) for a in (inputs, w, p)))
    with mpmath.workdps(MP_DPS):
        exact = results(*(numeric.to_mp(a.astype(np.float32)) for a in (inputs, w, p)))
        errors = {k: relative_error(numeric.to_mp(np.asarray(single[k])), exact[k]) for k in single}
    model.set_weights(w)
    ctx = {**context, "dtype": "float32", "precision": "eps 1.2e-7",
           "estimator": f"float32 engine vs {MP_DPS}-digit engine, same weights"}
    return [verdict("float32 vs mpmath", k, e, TARGETS["float32 vs mpmath"], ctx) for k, e in errors.items()]


def detection_records(result, quantity, context):
    records = []
    for check, entries in result.items():
        for entry, row in entries.items():
            ctx = {**context, "estimator": check, "entry": entry, "deltas": detection.DELTAS,
                   "caught": row["caught"], "relative_size": row["relative_size"]}
            smallest = row["smallest_caught"]
            measured = smallest if smallest is not None else float("inf")
            if row["false_alarm"]:
                records.append(verdict("detection power", quantity, float("inf"), TARGETS["detection"],
                                       ctx, note="false alarm on the unmutated result"))
            elif check != "ae-lab":
                # facts, no verdict: gradcheck is the comparison; a one-direction check's power on
                # entry k scales with |u_k| of its random direction, so no delta bound can hold for
                # every entry (the full ae-lab check carries the claim)
                records.append({"check": "detection power", "quantity": quantity, **ctx,
                                "verdict": "info", "measured": smallest})
            else:
                records.append(verdict("detection power", quantity, measured, TARGETS["detection"], ctx))
    return records


def declared(spec):
    """A lab net as its user declares it, for the certified series (which reads nothing of the engine)."""
    widths, acts, bias, tied, _ = spec
    return certified.Declared(tuple(widths), acts, use_bias=bias, tied=tied)


def certified_records(model, spec, inputs, w, context, seed):
    """Proven bounds (checks.certified), every entry, along a few random directions, or why they cannot run."""
    reason = certified.available()
    if reason is not None:
        return [cannot_run("certified", q, reason, {**context, "precision": "balls"})
                for q in certified.QUANTITIES]
    rng = np.random.default_rng(seed + 1000)
    out, tic = [], time.perf_counter()
    for k in range(CERTIFIED_DIRECTIONS):
        p = rng.standard_normal(model.params_number)
        out += certified.records(model, declared(spec), inputs, w, p,
                                 {**context, "precision": f"balls, {certified.PREC} bits"}, k)
    model.set_weights(w)
    seconds = time.perf_counter() - tic  # a benchmark figure for the README, never a verdict
    return [{**r, "net_seconds": seconds} for r in out]


def run_suite(quick=True, seed=0, progress=None):
    """(records, curves): every verdict, and the data the figures are drawn from."""
    progress = progress or (lambda message: None)
    specs = QUICK if quick else FULL
    records, curves = [], {"sweeps": {}, "ladder": {}, "taylor": {}, "detection": {}}
    for number, spec in enumerate(specs):
        net_seed = seed + number
        model, inputs, w, p = build_case(spec, net_seed)
        context = _context(model, net_seed, batch=inputs.shape[1])
        label = describe(model)
        main = number == 0
        progress(f"{label}: sweeps")
        if main or not quick:
            for quantity in sweeps.QUANTITIES:
                names = None if (main or quantity != "GNv") else ["forward", "central", "complex"]
                curve = sweeps.sweep(model, inputs, w, p, quantity, names=names)
                records += sweep_records(curve, quantity, context)
                if main:
                    curves["sweeps"][quantity] = curve
        if main:
            ladder = sweeps.sweep(model, inputs, w, p, "gradient", dtype=np.float32,
                                  names=["forward", "central", "complex"])
            records += sweep_records(ladder, "gradient", {**context, "dtype": "float32",
                                                          "precision": "eps 1.2e-7"}, "float32")
            curves["ladder"] = {"float32": ladder, "float64": curves["sweeps"]["gradient"]}
        progress(f"{label}: Taylor test")
        result = taylor.taylor_test(model, inputs, w, p)
        records += taylor_records(result, context)
        if main:
            curves["taylor"]["float64"] = result
            with mpmath.workdps(MP_DPS):
                result_mp = taylor.taylor_test(*(
                    [model] + [numeric.to_mp(a) for a in (inputs, w, p)]))
            records += taylor_records(result_mp, {**context, "dtype": "mpmath",
                                                  "precision": f"{MP_DPS} digits"})
            curves["taylor"]["mpmath"] = result_mp
            model.set_weights(w)
        progress(f"{label}: dense matrices and identities")
        if model.params_number <= 200:
            records += dense_records(model, inputs, w, context)
        records += identity_records(model, inputs, w, context, net_seed)
        records += float32_records(model, inputs, w, p, context)
        progress(f"{label}: certified bounds")
        records += certified_records(model, spec, inputs, w, context, net_seed)
        if main or (model.tied and not quick):
            progress(f"{label}: detection power")
            for quantity in sweeps.QUANTITIES:
                result = detection.detection_power(model, inputs, w, p, quantity, seed=net_seed)
                records += detection_records(result, quantity, context)
                if main:
                    curves["detection"][quantity] = result
    progress("G -> H as the residual vanishes")
    gap = dense.gauss_newton_gap_along_residual(seed=seed)
    curves["gauss_newton_gap"] = gap
    residual, rel = np.array(gap["residual_norm"]), np.array(gap["relative_gap"])
    moving = np.array(gap["scales"]) > 0
    slope = float(np.polyfit(np.log(residual[moving]), np.log(rel[moving]), 1)[0])
    ctx = {"net": "5-2l-5l (bilinear)", "seed": seed, "dtype": "float64", "precision": "eps 2.2e-16",
           "estimator": "data = U C + s E, s -> 0"}
    records.append(verdict("G -> H as residual -> 0", "slope of gap vs residual", abs(slope - 1),
                           TARGETS["taylor slope"], ctx, slope=slope, predicted=1))
    records.append(verdict("G -> H as residual -> 0", "gap at zero residual", rel[~moving][0],
                           TARGETS["dense"], ctx))
    return records, curves
