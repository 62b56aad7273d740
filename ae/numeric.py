"""The one module that knows about number types.

The engine runs unchanged in float32, float64, complex64, complex128 and in
mpmath arbitrary precision (numpy object arrays of ``mpf``/``mpc``).  Every
decision that depends on the number type lives here, so the rest of the
engine is written once:

* which dtypes are supported, and the working type of several arrays
  (numpy's promotion; any object array makes the result an object array);
* elementwise transcendental functions (numpy ufuncs do not apply to mpf);
* branch decisions on the real part (ReLU must not look at the imaginary
  part that carries a complex-step derivative);
* zeros and ones in a working type, and conversion of float data to mpf.

Precision of mpmath values is the caller's: wrap calls in
``mpmath.workdps(50)``.  Nothing here rounds an mpf to a float.
"""

import mpmath
import numpy as np

NUMERIC_DTYPES = tuple(
    np.dtype(t) for t in (np.float32, np.float64, np.complex64, np.complex128)
)
MP_DTYPE = np.dtype(object)
SUPPORTED = (*NUMERIC_DTYPES, MP_DTYPE)
_MP_TYPES = (mpmath.mpf, mpmath.mpc)


def is_mp(x):
    """True for an object array (mpmath values)."""
    return np.asarray(x).dtype == MP_DTYPE


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
    if x.dtype == MP_DTYPE:
        bad = next((v for v in x.flat if not isinstance(v, _MP_TYPES)), None)
        if bad is not None:
            raise TypeError(
                f"{name} is an object array holding {type(bad).__name__}; "
                "object arrays must hold mpmath mpf or mpc values (use ae.numeric.to_mp)"
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


def astype(x, dtype):
    """``x`` converted to a supported dtype (exactly, for mpmath)."""
    dt = parse_dtype(dtype)
    if dt == MP_DTYPE:
        return to_mp(x)
    return np.asarray(x).astype(dt)


def to_float64(x):
    """Round to float64 (or complex128): for reports and plots, never inside the engine."""
    x = np.asarray(x)
    if x.dtype != MP_DTYPE:
        return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)
    if any(isinstance(v, mpmath.mpc) for v in x.flat):
        return np.array([complex(v) for v in x.flat], dtype=np.complex128).reshape(x.shape)
    return np.array([float(v) for v in x.flat], dtype=np.float64).reshape(x.shape)


def zeros(shape, dtype):
    """Zeros in the given working dtype (mpf zeros for object)."""
    if np.dtype(dtype) == MP_DTYPE:
        return np.full(shape, mpmath.mpf(0), dtype=object)
    return np.zeros(shape, dtype=dtype)


def zeros_like(x):
    return zeros(np.shape(x), np.asarray(x).dtype)


def ones_like(x):
    if is_mp(x):
        return np.full(np.shape(x), mpmath.mpf(1), dtype=object)
    return np.ones_like(x)


_mp_tanh = np.frompyfunc(mpmath.tanh, 1, 1)
_mp_exp = np.frompyfunc(mpmath.exp, 1, 1)
_mp_sqrt = np.frompyfunc(mpmath.sqrt, 1, 1)
_mp_re = np.frompyfunc(mpmath.re, 1, 1)
_mp_im = np.frompyfunc(mpmath.im, 1, 1)


def tanh(x):
    """Elementwise tanh in x's own type (no overflow for large |x|)."""
    if is_mp(x):
        return np.asarray(_mp_tanh(x), dtype=object)
    return np.tanh(x)


def exp(x, out=None):
    """Elementwise exp in x's own type (callers keep Re(x) <= 0: no overflow).

    ``out`` is used where numpy allows it (not for mpmath): fewer temporaries.
    """
    if is_mp(x):
        return np.asarray(_mp_exp(x), dtype=object)
    return np.exp(x, out=out)


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
    complex-step argument (abs would discard the imaginary part's derivative)."""
    if not is_mp(x) and not np.iscomplexobj(x):
        return np.abs(x)  # the same thing for real x, in one pass
    return np.where(real_positive(x), x, -x)


def sqrt(x):
    """Elementwise square root in x's own type (optimizer denominators)."""
    if is_mp(x):
        return np.asarray(_mp_sqrt(x), dtype=object)
    return np.sqrt(x)


def real(x):
    """Real part, in the same family (mpf for mpmath, float for complex)."""
    if is_mp(x):
        return np.asarray(_mp_re(x), dtype=object)
    return np.real(x)


def imag(x):
    """Imaginary part: complex-step estimators read their derivative here."""
    if is_mp(x):
        return np.asarray(_mp_im(x), dtype=object)
    return np.imag(x)


def real_positive(x):
    """Boolean mask ``Re(x) > 0``: every branch decides on the real part."""
    return np.asarray(real(x) > 0, dtype=bool)


def machine_epsilon(dtype):
    """Unit roundoff scale of a dtype; for mpmath, of the current precision."""
    dt = np.dtype(dtype)
    if dt == MP_DTYPE:
        return float(mpmath.eps)
    return float(np.finfo(dt).eps)
