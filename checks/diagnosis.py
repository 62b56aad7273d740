"""How the lab names what is wrong with a candidate's result (``python -m checks --engine``): a classic
factor (N, 1/N, 2, 1/2, -1, N-1), the reference transposed, one of the hypotheses a check supplies (a
missing term of a pass's formula, an earlier call's values, ...), or agreement to float32 precision only;
with the distance that remains once the diagnosis is accounted for."""

import numpy as np

from checks.configurations import LEAKY_ALPHA

SAME = 1e-9  # a hypothesis explains a wrong result when it matches it this closely
NAMED_FACTOR = 1e-4  # ... a classic factor, this closely: float32 rounding must not hide it
SINGLE = 1e-5  # a wrong result this close is float32 rounding (eps 6e-8, a few hundred operations), not a formula
SINGLE_SENTENCE = "agrees only to single precision: a part is computed in float32 (float64 is expected)"


def other_alphas(X, method):
    """LeakyReLU's val or deriv with the alphas a class that ignores the one it is given uses."""
    below = {"val": lambda alpha: alpha * X, "deriv": lambda alpha: alpha * np.ones_like(X)}.get(method)
    if below is None:
        return []
    above = X if method == "val" else np.ones_like(X)
    return [(f"computes with alpha {alpha:g}, not the {LEAKY_ALPHA:g} it was given" if alpha else
             "is ReLU's: alpha 0 below zero", np.where(X > 0, above, below(alpha)))
            for alpha in (0.01, 0.1, 0.2, 0.02, 0.0)]


def close(a, b, tolerance=SAME):
    return distance(a, b) <= tolerance


def distance(a, b):
    """|a - b| / |b|: the figure of a result against what explains it."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(float).tiny))


def factor_name(c, n, tolerance=SAME):
    """(name, value) of the classic factor c is, or (None, None)."""
    constants = ((-1, "-1"), (2, "2"), (0.5, "1/2"))
    # a factor of the batch size that equals 1 or a constant (N = 2) is named as the constant: no cause is guessed
    batch = [(value, name) for value, name in ((n, "N"), (1 / n, "1/N"), (n - 1, "N-1"))
             if value != 1 and value not in dict(constants)]
    for value, name in batch[:2] + list(constants) + batch[2:]:
        if abs(c - value) <= tolerance * abs(value):
            return name, value
    return None, None


def diagnose(theirs, exact, n=None, matrix=None, hypotheses=()):
    """(sentence, factor) naming the classic hypothesis that explains a wrong result, or (None, None).

    ``n``: the batch size (for factors N and 1/N); ``matrix``: the (rows, columns) of a weight
    matrix the values ravel (for a transpose); ``hypotheses``: (sentence, alternative reference).
    """
    return diagnose_with_residual(theirs, exact, n, matrix, hypotheses)[:2]


def diagnose_with_residual(theirs, exact, n=None, matrix=None, hypotheses=()):
    """(sentence, factor, residual): ``diagnose``'s answer and the relative distance that remains once
    it is accounted for.  A classic factor (N, 1/N, ...) is named even where rounding coarser than
    float64's (float32: ~1e-7) blurs it, up to NAMED_FACTOR: the residual then says how far."""
    theirs, exact = np.ravel(theirs), np.ravel(exact)
    for sentence, alternative in hypotheses:
        alternative = np.ravel(alternative)
        if alternative.shape == theirs.shape and close(theirs, alternative):  # of another shape: compare() tries it
            return sentence, None, distance(theirs, alternative)
    norm2 = exact @ exact
    if norm2 > 0:
        c = float(theirs @ exact / norm2)
        if close(theirs, exact):  # the reference itself, to within SAME: no factor to name
            return None, None, None
        name, value = factor_name(c, n, NAMED_FACTOR) if n else (None, None)
        if name and close(theirs, value * exact, NAMED_FACTOR):
            c = value
        else:
            name = None
        # any one number is some multiple of another: for a scalar only a named factor says something
        if c != 0 and ((close(theirs, c * exact) and theirs.size > 1) or name):
            text = f"is {name if name else format(c, '.6g')} times the reference"
            if name == "N":
                text += ": the 1/N of formula (1) is missing"
            elif name == "1/N":
                text += ": it divides by N once more than formula (1)"
            return text, c, distance(theirs, c * exact)
    if matrix is not None and theirs.size == matrix[0] * matrix[1]:
        transposed = exact.reshape(matrix).T.ravel()
        if close(theirs, transposed):
            return "is the reference transposed (raveled in W's place)", None, distance(theirs, transposed)
    return None, None, None
