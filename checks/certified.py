"""Certified derivatives: error bounds proven by ball arithmetic (python-flint), entry by entry.

The truth comes from a forward pass of this module's own, on truncated power series of balls:
``taylor_series(declared, X, w, v)`` is F(w + t v) and the residual z(w + t v) - X to order 2 in
t, every coefficient a ball (python-flint's ``arb``) that contains the exact value.  It is built
from what the user *declared* (``Declared``: widths, one activation letter per layer, bias,
tying, LeakyReLU's slope) and the documented layout of the parameter vector, written out again
below, with the activations' mathematical definitions written here too.  It reads nothing from
the engine's objects: no layer, no activation class, no ``set_direction``, no derivative code.
It shares with the engine only numpy's object-array ``@`` and python-flint.

From the series, for every entry i (e_i the i-th unit vector, p a direction):

- F(w)    = coefficient 0;
- g_i     = coefficient 1 of F along e_i;
- (Hp)_i  = [Q(e_i + q) - Q(e_i) - Q(q)] / 2 * 2^k, with Q(v) = v.Hv = 2 x coefficient 2 of F along
  v (polarization), and q = p 2^-k, k chosen so that q's largest entry is near 1 (exact in balls);
- (Gp)_i  = (J e_i).(J q) / N * 2^k, J v being coefficient 1 of the residual along v.

What is proven, for each number type of the engine (float64, float32 at the weights rounded to
float32, mpmath at 50 digits): every entry of its loss, gradient, Hv and GNv is within the stated
distance of the exact value at the float64 weights, data and direction.  Each distance is
|value_i - exact_i| computed in balls (the value converted to a ball exactly) and bounded above
by ``arb.abs_upper``; norms and ratios are balls too.  Only the final bound is rounded (upward)
to a float.  For float64 the total splits into two statements, also proven: evaluation (the
float64 value against the engine's own formulas run on balls) and formula (the engine on balls
against the series).  A ReLU whose pre-activation ball straddles 0 cannot be certified: the
series raises ``UncertifiableError`` naming the layer and the unit.

Relative bounds divide by a lower bound of the exact vector's norm (|F| for the loss); when that
lower bound is 0 (a zero gradient, a zero loss) only the absolute bound is stated and judged.
"""

import contextlib
import functools
import math
import time
from typing import NamedTuple

import mpmath
import numpy as np

from ae import numeric

PREC = 200  # bits: radii far below float64's round-off
EPS64 = np.finfo(np.float64).eps
# relative to the exact vector's norm (absolute when that is 0); see records()
TARGETS = {"evaluation": 1e-14, "formula": 1e-30, "total": {"float64": 1e-14, "float32": 1e-5, "mpmath": 1e-45}}
QUANTITIES = ("loss", "gradient", "Hv", "GNv")


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


class Declared(NamedTuple):
    """A net as its user declares it (the arguments of ``ae.build``).

    Activation letters: l linear, t tanh, s sigmoid, r ReLU, k LeakyReLU with slope
    ``leaky_alpha`` left of 0.  Parameter layout (DESIGN, ``ae/ffnet.py``): each layer's block in
    layer order; inside a block W (outputs x inputs) row-major, then b.  Tied: layer L-1-k uses
    W_k^T for k < L // 2, and its block holds only its bias.
    """

    widths: tuple
    activations: str
    use_bias: bool = True
    tied: bool = False
    leaky_alpha: float = 0.1

    def unpack(self, v):
        """[(W, b or None)] per layer from a flat object array ``v`` (balls or series)."""
        L = len(self.widths) - 1
        if len(self.activations) != L:
            raise ValueError(f"{L} layers need {L} activation letters, got {self.activations!r}")
        out, at = [], 0
        for k, (n_in, n_out) in enumerate(zip(self.widths, self.widths[1:])):
            if self.tied and k >= L - L // 2:
                W = out[L - 1 - k][0].T
            else:
                W, at = v[at:at + n_in * n_out].reshape(n_out, n_in), at + n_in * n_out
            b = None
            if self.use_bias:
                b, at = v[at:at + n_out], at + n_out
            out.append((W, b))
        if at != len(v):
            raise ValueError(f"the declared net has {at} parameters, the vector {len(v)}")
        return out

    @property
    def params_number(self):
        L, pairs = len(self.widths) - 1, list(zip(self.widths, self.widths[1:]))
        shared = sum(a * b for k, (a, b) in enumerate(pairs) if self.tied and k >= L - L // 2)
        return sum(a * b for a, b in pairs) - shared + (sum(self.widths[1:]) if self.use_bias else 0)


def _activate(letter, U, alpha, layer):
    """The activation's mathematical definition on an object array of series."""
    out = np.empty(U.shape, dtype=object)
    for index, u in np.ndenumerate(U):
        if letter == "l":
            out[index] = u
        elif letter == "t":  # tanh u = (e^{2u} - 1) / (e^{2u} + 1)
            e = (2 * u).exp()
            out[index] = (e - 1) / (e + 1)
        elif letter == "s":  # 1 / (1 + e^{-u})
            out[index] = 1 / (1 + (-u).exp())
        elif letter in "rk":  # u right of 0, slope * u left of it (ReLU: slope 0)
            c = u[0]
            if c > 0:
                out[index] = u
            elif c < 0:
                out[index] = (alpha if letter == "k" else 0) * u
            else:
                raise numeric.UncertifiableError(f"layer {layer}, unit {index[0]}, column {index[1]}: the "
                                                 f"pre-activation {c} straddles the kink at 0")
        else:
            raise ValueError(f"no definition for activation {letter!r}")
    return out


def taylor_series(declared, inputs, w, v):
    """(F(w + t v), residual z(w + t v) - X) as series in t; ``inputs``, ``w``, ``v`` are balls."""
    flint = numeric._flint()
    theta = np.empty(len(w), dtype=object)
    for j in range(len(w)):
        theta[j] = flint.arb_series([w[j], v[j]])
    Z = inputs
    for k, ((W, b), letter) in enumerate(zip(declared.unpack(theta), declared.activations)):
        U = W @ Z
        if b is not None:
            U = U + b[:, None]
        Z = _activate(letter, U, declared.leaky_alpha, k)
    residual = Z - inputs
    return (residual * residual).sum() / (2 * inputs.shape[1]), residual


def exact_derivatives(declared, inputs, w, p):
    """{quantity: object array of balls}: F(w), g, Hp and Gp entry by entry (see the docstring)."""
    flint = numeric._flint()
    M, N = len(w), inputs.shape[1]
    largest = _largest(v.abs_upper() for v in p)
    k = _exponent(largest) if largest > 0 else 0
    scale = flint.arb(2) ** k
    q = np.array([v / scale for v in p], dtype=object)  # exact: a power of two
    F_q, R_q = taylor_series(declared, inputs, w, q)
    Jq = np.array([r[1] for r in R_q.flat], dtype=object)
    gradient, Hp, Gp = (np.empty(M, dtype=object) for _ in range(3))
    for i in range(M):
        e = np.array([flint.arb(1 if j == i else 0) for j in range(M)], dtype=object)
        F_e, R_e = taylor_series(declared, inputs, w, e)
        F_eq, _ = taylor_series(declared, inputs, w, e + q)
        Je = np.array([r[1] for r in R_e.flat], dtype=object)
        gradient[i] = F_e[1]
        Hp[i] = (F_eq[2] - F_e[2] - F_q[2]) * scale  # Q/2 each: [Q(e+q) - Q(e) - Q(q)] / 2
        Gp[i] = (Je * Jq).sum() / N * scale
    return {"loss": np.array([F_q[0]], dtype=object), "gradient": gradient, "Hv": Hp, "GNv": Gp}


def _largest(balls):
    """The largest of exact balls (upper bounds): comparisons between exact balls decide."""
    return functools.reduce(lambda a, b: a if a > b else b, balls)


def _exponent(ball):
    """An integer k with 2^k near the ball's magnitude (exact arithmetic; any k keeps the proof)."""
    mantissa, exponent = ball.abs_upper().mid().man_exp()
    return int(exponent) + int(mantissa).bit_length() - 1


def distance(values, exact):
    """(max_i |values_i - exact_i|, ||exact||) as balls; values convert to balls exactly."""
    balls = numeric.to_arb(np.asarray(values).reshape(-1))
    worst = _largest((v - e).abs_upper() for v, e in zip(balls, exact))
    return worst, ((exact * exact).sum()).sqrt()


def upper_float(ball):
    """The least float >= every |value| in the ball (inf beyond float64's range)."""
    exact = ball.abs_upper()  # an exact ball: comparisons with it decide
    value = float(exact.mid())
    if not math.isfinite(value):
        return math.inf
    return value if type(exact)(value) >= exact else float(np.nextafter(value, np.inf))


def bound(values, exact):
    """{"absolute": float, "relative": float or None}: proven max_i |values_i - exact_i|, and the same
    over a lower bound of ||exact|| (None where that lower bound is 0)."""
    worst, norm = distance(values, exact)
    lower = norm.lower()
    return {"absolute": upper_float(worst),
            "relative": upper_float(worst / lower) if lower > 0 else None,
            "norm": upper_float(norm)}


def engine_values(model, inputs, w, p, dtype):
    """{quantity: values} of the engine in ``dtype`` ("float64", "float32", "mpmath"), or a string
    saying why that number type cannot run here."""
    model.set_weights(w)  # any earlier state of the engine is replaced
    if dtype == "float32":
        with np.errstate(over="ignore"):
            cast = {name: np.asarray(a, np.float32) for name, a in (("weights", w), ("data", inputs),
                                                                   ("direction", p))}
        for name, a in cast.items():
            if not np.all(np.isfinite(a)):
                return f"cannot run: the {name} overflow float32"
        w, inputs, p = cast["weights"], cast["data"], cast["direction"]
    context = mpmath.workdps(50) if dtype == "mpmath" else contextlib.nullcontext()
    with context:
        if dtype == "mpmath":
            w, inputs, p = numeric.to_mp(w), numeric.to_mp(inputs), numeric.to_mp(p)
        model.set_weights(w)
        with np.errstate(over="ignore", invalid="ignore"):
            loss, grad = model.compute_loss(inputs)
            out = {"loss": np.array([loss], dtype=object if dtype == "mpmath" else None), "gradient": grad,
                   "Hv": model.compute_hessvec(p), "GNv": model.compute_gaussnewtonvec(p)}
    if dtype != "mpmath" and not all(np.all(np.isfinite(v)) for v in out.values()):
        return f"cannot run: the {dtype} engine's values are not finite here"
    return out


def balls_of_engine(model, inputs, w, p):
    """The engine's own formulas run on balls (exact inputs): {quantity: balls}."""
    model.set_weights(numeric.to_arb(w))
    loss, grad = model.compute_loss(numeric.to_arb(inputs))
    p_ball = numeric.to_arb(p)
    return {"loss": np.array([loss], dtype=object), "gradient": grad,
            "Hv": model.compute_hessvec(p_ball), "GNv": model.compute_gaussnewtonvec(p_ball)}


def certify(model, declared, inputs, w, p, bits=PREC):
    """Proven bounds at (w, p) on the batch ``inputs``:
    {"exact": balls, "total": {dtype: {quantity: bound} or reason}, "evaluation": {...}, "formula": {...}}.

    The balls carry ``bits`` bits; fewer make their radii part of every bound (still proven, only wider).
    Raises UncertifiableError where a ReLU pre-activation ball straddles 0.
    """
    w, inputs, p = (np.asarray(a, np.float64) for a in (w, inputs, p))
    if declared.params_number != model.params_number:
        raise ValueError(f"the declared net has {declared.params_number} parameters, the model "
                         f"{model.params_number}")
    values = {dtype: engine_values(model, inputs, w, p, dtype) for dtype in ("float64", "float32", "mpmath")}
    with ball_precision(bits):
        exact = exact_derivatives(declared, numeric.to_arb(inputs), numeric.to_arb(w), numeric.to_arb(p))
        engine_balls = balls_of_engine(model, inputs, w, p)
        out = {"exact": exact, "total": {}}
        for dtype, found in values.items():
            out["total"][dtype] = found if isinstance(found, str) else {
                q: bound(found[q], exact[q]) for q in QUANTITIES}
        out["evaluation"] = {q: bound(values["float64"][q], engine_balls[q]) for q in QUANTITIES}
        out["formula"] = {q: bound(engine_balls[q], exact[q]) for q in QUANTITIES}
    model.set_weights(w)
    return out


def _judged(bounds):
    """(measured, how): the relative bound, or the absolute one where the exact value may be 0."""
    if bounds["relative"] is None:
        return bounds["absolute"], "absolute (the exact value may be 0)"
    return bounds["relative"], "relative to the exact vector's norm"


def records(model, declared, inputs, w, p, context, direction):
    """The lab's records of one certification (see the module docstring for what each proves)."""
    from checks import records as lab_records

    tic = time.perf_counter()
    try:
        result = certify(model, declared, inputs, w, p)
    except numeric.UncertifiableError as error:
        return [lab_records.cannot_run("certified: total", q, f"uncertifiable: {error}", context,
                                       direction=direction) for q in QUANTITIES]
    seconds = time.perf_counter() - tic
    out = []

    def add(statement, quantity, bounds, threshold, dtype, estimator):
        measured, how = _judged(bounds)
        out.append(lab_records.verdict(
            f"certified: {statement}", quantity, measured, threshold,
            {**context, "dtype": dtype}, statement=statement, direction=direction, entries="every entry",
            judged=how, absolute=bounds["absolute"], exact_norm=bounds["norm"], estimator=estimator,
            certify_seconds=seconds))

    for dtype, found in result["total"].items():
        for quantity in QUANTITIES:
            if isinstance(found, str):
                out.append(lab_records.cannot_run("certified: total", quantity, f"{dtype}: {found}",
                                                  {**context, "dtype": dtype}, statement="total",
                                                  direction=direction))
            else:
                add("total", quantity, found[quantity], TARGETS["total"][dtype], dtype,
                    f"{dtype} engine vs the exact value (series on balls)")
    for quantity in QUANTITIES:
        add("evaluation", quantity, result["evaluation"][quantity], TARGETS["evaluation"], "float64",
            "float64 engine vs its own formulas on balls")
        add("formula", quantity, result["formula"][quantity], TARGETS["formula"], "float64",
            "the engine's formulas on balls vs the series")
    return out


def available():
    """None, or why the certified estimator cannot run here."""
    try:
        numeric._flint()
    except ImportError as error:
        return f"cannot run: {error}"
    return None


def sentence(net_records):
    """One sentence saying exactly what is proven for a net (its certified records)."""
    ran = [r for r in net_records if r["verdict"] in ("pass", "fail")]
    if not ran:
        return "nothing proven: " + "; ".join(sorted({r.get("reason", "") for r in net_records}))

    def worst(dtype, quantity, statement="total"):
        values = [r["measured"] for r in ran
                  if r.get("statement") == statement and r["quantity"] == quantity and r["dtype"] == dtype]
        return max(values) if values else None

    def part(dtype):
        found = [(q, worst(dtype, q)) for q in QUANTITIES]
        return ", ".join(f"{q} {v:.1e}" for q, v in found if v is not None)

    directions = len({r.get("direction") for r in ran})
    absolute = sorted({r["quantity"] for r in ran if r.get("judged", "").startswith("absolute")})
    batch = {r.get("batch") for r in ran}
    where = f"on its batch of {batch.pop()} columns" if len(batch) == 1 and None not in batch else "on its batch"
    text = (f"at the lab's seeded weights {where}, the loss and every entry of the gradient, and every entry of "
            f"Hv and GNv along each of {directions} random direction{'s' if directions > 1 else ''}, are proven "
            f"within relative (to the exact vector's norm) float64 {part('float64')}")
    for dtype, label in (("float32", "float32"), ("mpmath", "50 digits")):
        if any(r["dtype"] == dtype for r in ran):
            text += f"; {label} {part(dtype)}"
    skipped = sorted({r["reason"] for r in net_records if r["verdict"] == "cannot run"})
    if skipped:
        text += "; " + "; ".join(skipped)
    formulas = max(r["measured"] for r in ran if r.get("statement") == "formula")
    text += f"; the engine's formulas agree with the exact derivatives within {formulas:.0e}"
    if absolute:
        text += f" ({', '.join(absolute)}: absolute bounds, the exact value may be 0)"
    failed = [r for r in ran if r["verdict"] == "fail"]
    return text + (f"; {len(failed)} bounds exceed their targets" if failed else "")
