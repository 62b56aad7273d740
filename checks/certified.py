"""Certified derivatives: error bounds proven by ball arithmetic (python-flint), not estimated.

Two statements, for a net, weights w, data X and a direction p:

1. Evaluation.  The engine runs unchanged on balls (``ae.numeric.to_arb``,
   ``PREC`` bits): every ball contains the exact value of the engine's own
   formulas.  So the float64 gradient, Hv and GNv are within
   X = max_i (|r_i - mid_i| + rad_i) of that exact value.
2. Formulas.  F(w + t p) is computed as a truncated power series in t with
   ``arb_series``, through a forward pass of its own that uses only the
   activations' values (no derivative code, no backward or R pass of the
   engine): its coefficients are g.p and p.Hp / 2 with proven radii, and the
   residual's series gives J p, so p.Gp = |J p|^2 / N.  The engine's values
   on balls are then within Y of these exact directional derivatives.

Together the float64 g.p (p.Hp, p.Gp) is proven within the bound of
|float64 value - series coefficient|, computed as one ball.  A ReLU whose
pre-activation ball straddles 0 cannot be certified: the record says so,
naming the layer and the unit.
"""

import contextlib

import mpmath
import numpy as np

from ae import numeric
from ae.activations import letter_of

PREC = 200  # bits: radii far below float64's round-off
EPS64 = np.finfo(np.float64).eps
TARGETS = {"evaluation": 1e-12, "formula": 1e-30, "total": 1e-12}  # relative, see records()


@contextlib.contextmanager
def ball_precision(bits=PREC, series_terms=3):
    """python-flint at ``bits`` bits with power series of ``series_terms`` terms (order 2)."""
    flint = numeric._flint()
    if bits < 53:
        raise ValueError(f"certified bounds need at least 53 bits (a float64 must convert exactly), got {bits}")
    saved = flint.ctx.prec, flint.ctx.cap
    flint.ctx.prec, flint.ctx.cap = bits, series_terms
    try:
        yield flint
    finally:
        flint.ctx.prec, flint.ctx.cap = saved


def _series_values(letter, U, alpha, layer):
    """The activation's values on an object array of series (values only: no derivative code)."""
    out = np.empty(U.shape, dtype=object)
    for index, u in np.ndenumerate(U):
        if letter == "l":
            out[index] = u
        elif letter == "t":
            e = (2 * u).exp()
            out[index] = (e - 1) / (e + 1)
        elif letter == "s":
            out[index] = 1 / (1 + (-u).exp())
        elif letter in "rk":
            c = u[0]
            if c > 0:
                out[index] = u
            elif c < 0:
                out[index] = alpha * u
            else:
                raise numeric.UncertifiableError(f"layer {layer}, unit {index[0]}, column {index[1]}: the "
                                                 f"pre-activation {c} straddles the kink at 0")
        else:
            raise ValueError(f"no series for activation {letter!r}")
    return out


def _series_matrix(flint, values, directions):
    out = np.empty(values.shape, dtype=object)
    for index, v in np.ndenumerate(values):
        out[index] = flint.arb_series([flint.arb(float(v)), flint.arb(float(directions[index]))])
    return out


def taylor_series(model, inputs, w, p):
    """(F(w + t p) series, residual series array): the forward pass on series, values only."""
    with ball_precision() as flint:
        model.set_weights(w)
        model.net.set_direction(p)  # the parameter map (ties expanded), not a derivative pass
        Z = numeric.to_arb(inputs)
        for k, layer in enumerate(model.layers):
            W = _series_matrix(flint, layer.W, layer.P_W)
            U = W @ Z
            if layer.use_bias:
                U = U + _series_matrix(flint, layer.b, layer.P_b)
            Z = _series_values(letter_of(layer.afun), U, getattr(layer.afun, "alpha", 1.0), k)
        residual = Z - numeric.to_arb(inputs)
        N = inputs.shape[1]
        return (residual * residual).sum() / (2 * N), residual


def exact_dot(a, b):
    """a.b as one ball: float64 vectors convert exactly (balls stay balls), the sum is rigorous."""
    return (numeric.to_arb(a) * numeric.to_arb(b)).sum()


def _upper(ball):
    """An upper bound of |ball| as a float (rounded up)."""
    return float(np.nextafter(float(abs(ball).upper()), np.inf))


def evaluation_bound(value, balls):
    """max_i |value_i - mid_i| + rad_i: value proven within it of the balls' exact values."""
    mids, rads = numeric.ball_bounds(balls)
    return float(np.max(np.abs(numeric.to_float64(value) - mids) + rads))


def evaluation_bound_of_balls(exact_values, balls):
    """max_i |v_i - b_i| bounded above, for values given as exact balls (an mpmath result)."""
    return max(_upper(v - b) for v, b in zip(exact_values, balls))


def certify(model, inputs, w, p):
    """Proven bounds at (w, p): {quantity: {...}}; raises UncertifiableError at a straddled kink."""
    model.set_weights(w)
    _, g64 = model.compute_loss(inputs)
    values = {"gradient": g64, "Hv": model.compute_hessvec(p), "GNv": model.compute_gaussnewtonvec(p)}
    with mpmath.workdps(50):  # the same formulas at 50 digits and in float32, for statement 1 too
        model.set_weights(numeric.to_mp(w))
        g50 = model.compute_loss(numeric.to_mp(inputs))[1]
    model.set_weights(np.asarray(w, np.float32))
    g32 = model.compute_loss(np.asarray(inputs, np.float32))[1]
    with ball_precision():
        model.set_weights(numeric.to_arb(w))
        _, g_ball = model.compute_loss(numeric.to_arb(inputs))
        p_ball = numeric.to_arb(p)
        balls = {"gradient": g_ball, "Hv": model.compute_hessvec(p_ball),
                 "GNv": model.compute_gaussnewtonvec(p_ball)}
        F, residual = taylor_series(model, inputs, w, p)
        N = inputs.shape[1]
        Jp = np.array([r[1] for r in residual.flat], dtype=object)
        exact = {"gradient": F[1], "Hv": 2 * F[2], "GNv": (Jp * Jp).sum() / N}
        out = {}
        for quantity, value in values.items():
            scale = float(np.linalg.norm(numeric.to_float64(value)) * np.linalg.norm(p))
            formula = exact_dot(balls[quantity], p) - exact[quantity]
            total = exact_dot(value, p) - exact[quantity]
            out[quantity] = {"evaluation": evaluation_bound(value, balls[quantity]),
                             "formula": _upper(formula), "total": _upper(total), "scale": scale,
                             "norm": float(np.linalg.norm(numeric.to_float64(value)))}
        out["gradient"]["evaluation float32"] = evaluation_bound(g32, g_ball)
        out["gradient"]["evaluation 50 digits"] = evaluation_bound_of_balls(numeric.to_arb(g50), g_ball)
    model.set_weights(w)
    return out


def records(model, inputs, w, p, context, direction):
    """The lab's records of one certification: verdicts on relative bounds, in units of eps too.

    Relative: a vector bound against the vector's norm, a directional one against |v| |p|.
    """
    from checks import records as lab_records

    try:
        result = certify(model, inputs, w, p)
    except numeric.UncertifiableError as error:
        return [lab_records.cannot_run("certified: total", q, f"uncertifiable: {error}", context,
                                       direction=direction) for q in ("gradient", "Hv", "GNv")]
    out = []
    for quantity, bounds in result.items():
        for statement, key, scale in (("evaluation", "evaluation", bounds["norm"]),
                                      ("formula", "formula", bounds["scale"]),
                                      ("total", "total", bounds["scale"])):
            relative = bounds[key] / scale if scale > 0 else bounds[key]
            out.append(lab_records.verdict(
                f"certified: {statement}", quantity, relative, TARGETS[statement], context, statement=statement,
                direction=direction, absolute=bounds[key], in_eps=relative / EPS64,
                estimator={"evaluation": "float64 vs its formulas on balls",
                           "formula": "formulas vs the Taylor series (balls)",
                           "total": "float64 v.p vs the truth"}[statement]))
        for label in ("evaluation float32", "evaluation 50 digits"):
            if label in bounds:
                relative = bounds[label] / bounds["norm"]
                dtype = "float32" if "32" in label else "mpmath"
                out.append(lab_records.verdict(
                    "certified: evaluation", quantity, relative, 1e-5 if dtype == "float32" else 1e-45,
                    {**context, "dtype": dtype}, statement="evaluation", direction=direction,
                    absolute=bounds[label], estimator=f"{dtype} vs its formulas on balls"))
    return out


def available():
    """None, or why the certified estimator cannot run here."""
    try:
        numeric._flint()
    except ImportError as error:
        return f"cannot run: {error}"
    return None


def sentence(net_records):
    """One sentence saying what is now proven for a net (its certified records)."""
    ran = [r for r in net_records if r["verdict"] in ("pass", "fail")]
    if not ran:
        return "nothing proven: " + "; ".join(sorted({r.get("reason", "") for r in net_records}))

    def worst(statement, quantity):
        values = [r["measured"] for r in ran if r.get("statement") == statement and r["quantity"] == quantity
                  and r["dtype"] == "float64"]
        return max(values) if values else None

    totals = [f"{q} {worst('total', q):.1e}" for q in ("gradient", "Hv", "GNv") if worst("total", q) is not None]
    formulas = max(r["measured"] for r in ran if r.get("statement") == "formula")
    directions = len({r.get("direction") for r in ran})
    failed = [r for r in ran if r["verdict"] == "fail"]
    text = (f"along {directions} random directions, the float64 g.p, p.Hp and p.Gp are proven within relative "
            + ", ".join(totals) + f" of the exact derivatives, and the engine's formulas within {formulas:.0e}")
    return text + (f"; {len(failed)} bounds exceed their targets" if failed else "")
