"""The one module that knows about number types.

The engine runs unchanged in float32, float64, complex64, complex128, in
mpmath arbitrary precision (numpy object arrays of ``mpf``/``mpc``) and in
ball arithmetic (object arrays of python-flint's ``arb``: each value a
midpoint and a radius proven to contain the exact real result).  Every
decision that depends on the number type lives here, so the rest of the
engine is written once:

* which dtypes are supported, and the working type of several arrays
  (numpy's promotion; any object array makes the result an object array);
* elementwise transcendental functions (numpy ufuncs do not apply to mpf);
* branch decisions on the real part (ReLU must not look at the imaginary
  part that carries a complex-step derivative);
* zeros and ones in a working type, and conversion of float data to mpf.

Precision of mpmath values is the caller's: wrap calls in
``mpmath.workdps(50)``.  Nothing here rounds an mpf to a float.  Balls work
at ``flint.ctx.prec`` bits (at least 53); a branch whose ball straddles the
switch point (a ReLU pre-activation containing 0) cannot be decided and
raises ``UncertifiableError`` instead of guessing.
"""

import functools

import mpmath
import numpy as np

NUMERIC_DTYPES = tuple(
    np.dtype(t) for t in (np.float32, np.float64, np.complex64, np.complex128)
)
MP_DTYPE = np.dtype(object)
SUPPORTED = (*NUMERIC_DTYPES, MP_DTYPE)
_MP_TYPES = (mpmath.mpf, mpmath.mpc)


class UncertifiableError(ArithmeticError):
    """Ball arithmetic cannot decide a branch: the ball straddles the switch point."""


def _flint():
    try:
        import flint
    except ImportError:
        raise ImportError("ball arithmetic needs python-flint: pip install \"ae-lab[certified]\"") from None
    return flint


@functools.cache  # asked by every elementwise call on an object array: import (or fail) once
def _arb_type():
    """flint.arb if python-flint is importable (without failing when it is not)."""
    try:
        import flint
    except ImportError:
        return None
    return flint.arb


def is_mp(x):
    """True for an object array (mpmath values or balls)."""
    return np.asarray(x).dtype == MP_DTYPE


def is_arb(x):
    """True for an object array of python-flint balls."""
    x = np.asarray(x)
    arb = _arb_type()
    return x.dtype == MP_DTYPE and x.size > 0 and arb is not None and isinstance(x.flat[0], arb)


def check_array(x, name, ndim=None, finite=True):
    """Return ``x`` as a numpy array after checking what the engine needs.

    Raises TypeError for an unsupported dtype (or an object array holding
    anything but mpf/mpc) and ValueError for a wrong rank or a NaN/inf.
    """
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype not in SUPPORTED:
        raise TypeError(
            f"{name} has dtype {x.dtype}; ae works in float32, float64, "
            "complex64, complex128 or object arrays of mpmath mpf/mpc "
            f"(convert with {name}.astype(np.float64))"
        )
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {x.shape}")
    if x.dtype == MP_DTYPE and is_arb(x):
        arb = _arb_type()
        bad = next((v for v in x.flat if not isinstance(v, arb)), None)
        if bad is not None:
            raise TypeError(f"{name} is an object array of balls holding a {type(bad).__name__}: "
                            "convert all of it with ae.numeric.to_arb")
        if finite and not all(v.is_finite() for v in x.flat):
            raise ValueError(f"{name} contains a non-finite ball (an infinite midpoint or radius)")
    elif x.dtype == MP_DTYPE:
        bad = next((v for v in x.flat if not isinstance(v, _MP_TYPES)), None)
        if bad is not None:
            raise TypeError(
                f"{name} is an object array holding {type(bad).__name__}; "
                "object arrays must hold mpmath mpf or mpc values (use ae.numeric.to_mp), "
                "or python-flint arb balls (ae.numeric.to_arb)"
            )
        if finite and not all(mpmath.isfinite(v) for v in x.flat):
            raise ValueError(f"{name} contains NaN or inf")
    # a finite sum proves every entry finite (NaN and inf propagate) without an
    # array of flags; only a non-finite sum (or an overflowing one) needs the full look
    elif finite and not _sum_is_finite(x) and not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _sum_is_finite(x):
    with np.errstate(over="ignore", invalid="ignore"):
        return np.isfinite(x.sum())


def check_vector(v, name, length):
    """``check_array`` for a flat vector of a known length (weights, directions)."""
    v = check_array(v, name, ndim=1)
    if v.shape[0] != length:
        raise ValueError(f"{name} has length {v.shape[0]}, expected {length}")
    return v


def parse_dtype(dtype):
    """A supported dtype from a name or type; ``object`` or "mpmath" means mpmath."""
    if isinstance(dtype, str) and dtype == "mpmath":
        return MP_DTYPE
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in SUPPORTED:
        raise TypeError(
            f"unsupported dtype {dtype!r}: use float32, float64, complex64, "
            "complex128 or object (mpmath)"
        )
    return dt


def working_dtype(*arrays):
    """The type the engine computes in for these arrays combined."""
    dts = [np.asarray(a).dtype for a in arrays]
    if MP_DTYPE in dts:
        return MP_DTYPE
    return np.result_type(*dts)


def to_mp(x):
    """An object array of mpf (or mpc) holding exactly the values of ``x``."""
    x = np.asarray(x)
    if x.dtype == MP_DTYPE:
        return x.copy()
    convert = mpmath.mpc if np.iscomplexobj(x) else mpmath.mpf
    out = np.empty(x.shape, dtype=object)
    for i, v in np.ndenumerate(x):
        out[i] = convert(v.item())
    return out


def to_arb(x):
    """An object array of exact balls (radius 0) holding the values of real ``x``.

    Needs python-flint and a working precision of at least 53 bits
    (``flint.ctx.prec``): below that a float64 value would already be rounded.
    """
    flint = _flint()
    if flint.ctx.prec < 53:
        raise ValueError(f"ball arithmetic at {flint.ctx.prec} bits cannot hold a float64 exactly: "
                         "set flint.ctx.prec to 53 or more")
    x = np.asarray(x)
    if is_arb(x):
        return x.copy()
    if np.iscomplexobj(x):
        raise TypeError("balls are real: the arb number type takes real values only")
    out = np.empty(x.shape, dtype=object)
    for i, v in np.ndenumerate(x):
        if x.dtype == MP_DTYPE:  # mpf = (-1)^sign man 2^exp: exact while prec holds man's bits
            if not isinstance(v, mpmath.mpf) or not mpmath.isfinite(v):
                raise ValueError(f"cannot make a ball of {v!r}")
            sign, man, exponent, _ = v._mpf_
            out[i] = flint.arb(-int(man) if sign else int(man)) * flint.arb(2) ** int(exponent)
            continue
        value = float(v)
        if not np.isfinite(value):
            raise ValueError("cannot make a ball of NaN or inf")
        out[i] = flint.arb(value)  # a float is a dyadic rational: the ball is exact
    return out


def ball_bounds(x):
    """(midpoints, radii) of an array of balls, as float64 arrays (radii rounded up)."""
    x = np.asarray(x)
    mids = np.array([float(v.mid()) for v in x.flat]).reshape(x.shape)
    rads = np.array([float(v.rad()) for v in x.flat]).reshape(x.shape)
    return mids, np.nextafter(rads, np.inf)


def astype(x, dtype):
    """``x`` converted to a supported dtype (exactly, for mpmath)."""
    dt = parse_dtype(dtype)
    if dt == MP_DTYPE:
        return to_mp(x)
    return np.asarray(x).astype(dt)


def to_float64(x):
    """Round to float64 (or complex128): for reports and plots, never inside the engine.

    A ball rounds to its midpoint.
    """
    x = np.asarray(x)
    if x.dtype != MP_DTYPE:
        return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)
    if is_arb(x):
        return ball_bounds(x)[0]
    if any(isinstance(v, mpmath.mpc) for v in x.flat):
        return np.array([complex(v) for v in x.flat], dtype=np.complex128).reshape(x.shape)
    return np.array([float(v) for v in x.flat], dtype=np.float64).reshape(x.shape)


def zeros(shape, dtype, like=None):
    """Zeros in the given working dtype: for object, mpf zeros, or balls if ``like`` holds balls."""
    if np.dtype(dtype) == MP_DTYPE:
        zero = _arb_type()(0) if like is not None and is_arb(like) else mpmath.mpf(0)
        return np.full(shape, zero, dtype=object)
    return np.zeros(shape, dtype=dtype)


def zeros_like(x):
    return zeros(np.shape(x), np.asarray(x).dtype, like=x)


def ones_like(x):
    if is_arb(x):
        return np.full(np.shape(x), _arb_type()(1), dtype=object)
    if is_mp(x):
        return np.full(np.shape(x), mpmath.mpf(1), dtype=object)
    return np.ones_like(x)


_mp_tanh = np.frompyfunc(mpmath.tanh, 1, 1)
_mp_exp = np.frompyfunc(mpmath.exp, 1, 1)
_mp_sqrt = np.frompyfunc(mpmath.sqrt, 1, 1)
_mp_re = np.frompyfunc(mpmath.re, 1, 1)
_mp_im = np.frompyfunc(mpmath.im, 1, 1)


_arb_tanh = np.frompyfunc(lambda v: v.tanh(), 1, 1)
_arb_exp = np.frompyfunc(lambda v: v.exp(), 1, 1)
_arb_sqrt = np.frompyfunc(lambda v: v.sqrt(), 1, 1)


def tanh(x):
    """Elementwise tanh in x's own type (no overflow for large |x|)."""
    if is_arb(x):
        return np.asarray(_arb_tanh(x), dtype=object)
    if is_mp(x):
        return np.asarray(_mp_tanh(x), dtype=object)
    return np.tanh(x)


def exp(x, out=None):
    """Elementwise exp in x's own type (callers keep Re(x) <= 0: no overflow).

    ``out`` is used where numpy allows it (not for mpmath): fewer temporaries.
    """
    if is_arb(x):
        return np.asarray(_arb_exp(x), dtype=object)
    if is_mp(x):
        return np.asarray(_mp_exp(x), dtype=object)
    return np.exp(x, out=out)


def sigmoid(x):
    """1 / (1 + exp(-x)) in x's own type, overflow-free and accurate in both tails.

    Floats, complex and mpmath: with e = exp(-|x|) (|.| by the real part),
    1/(1+e) for Re x > 0 and e/(1+e) otherwise, so exp never sees a positive
    argument.  Balls: 1/(1 + exp(-x)) itself (a ball has no overflow), one
    formula for the whole ball, so a ball straddling 0 is still exact.
    """
    if is_arb(x):
        return 1 / (1 + exp(-x))
    e = exp(-abs_by_real_part(x))
    return np.where(real_positive(x), ones_like(e), e) / (1 + e)


def sech_squared(x):
    """sech(x)^2 = 1 - tanh(x)^2 in x's own type, accurate in the tails and overflow-free.

    1 - tanh^2 loses all relative accuracy where tanh is near +-1 (1e-11 at
    x = 6.5).  Real floats: (1/cosh x)^2, three passes (cosh overflows to inf
    beyond |x| ~ 710 in float64 and 89 in float32, and 1/inf = 0 is the right
    limit).  Complex and mpmath: 4e / (1 + e)^2 with e = exp(-2|x|), |x| by
    the real part, so the complex step stays analytic and exp never overflows.
    """
    if not is_mp(x) and not np.iscomplexobj(x):
        with np.errstate(over="ignore"):
            c = np.cosh(x)
        np.reciprocal(c, out=c)
        c *= c
        return c
    e = -2 * abs_by_real_part(x)
    e = exp(e, out=e)
    return 4 * e / ((1 + e) * (1 + e))


def abs_by_real_part(x):
    """x or -x, whichever has Re >= 0: |x| for real x, yet analytic for a
    complex-step argument (abs would discard the imaginary part's derivative).

    Balls take abs itself: the ball of |v| for every v in the ball, which is
    all an even function (sech^2) needs.
    """
    if is_arb(x) or (not is_mp(x) and not np.iscomplexobj(x)):
        return np.abs(x)  # the same thing for real x, in one pass
    return np.where(real_positive(x), x, -x)


def sqrt(x):
    """Elementwise square root in x's own type (optimizer denominators)."""
    if is_arb(x):
        return np.asarray(_arb_sqrt(x), dtype=object)
    if is_mp(x):
        return np.asarray(_mp_sqrt(x), dtype=object)
    return np.sqrt(x)


def real(x):
    """Real part, in the same family (mpf for mpmath, float for complex, the ball for a ball)."""
    if is_arb(x):
        return x
    if is_mp(x):
        return np.asarray(_mp_re(x), dtype=object)
    return np.real(x)


def imag(x):
    """Imaginary part: complex-step estimators read their derivative here."""
    if is_arb(x):
        return zeros_like(x)
    if is_mp(x):
        return np.asarray(_mp_im(x), dtype=object)
    return np.imag(x)


def real_positive(x):
    """Boolean mask ``Re(x) > 0``: every branch decides on the real part.

    A ball is positive if all of it is, not positive if all of it is <= 0;
    one that contains 0 and positive numbers cannot be decided:
    UncertifiableError names the first such entry.
    """
    if is_arb(x):
        x = np.asarray(x)
        mask = np.empty(x.shape, dtype=bool)
        for index, v in np.ndenumerate(x):
            if v > 0:
                mask[index] = True
            elif v <= 0:
                mask[index] = False
            else:
                raise UncertifiableError(f"unit {index[0]}, column {index[1] if len(index) > 1 else 0}: "
                                         f"the ball {v} straddles the kink at 0")
        return mask
    return np.asarray(real(x) > 0, dtype=bool)


def machine_epsilon(dtype):
    """Unit roundoff scale of a dtype; for mpmath, of the current precision."""
    dt = np.dtype(dtype)
    if dt == MP_DTYPE:  # (balls carry their own error: their radius)
        return float(mpmath.eps)
    return float(np.finfo(dt).eps)
