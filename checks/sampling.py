"""What is checked above the entrywise limit, and how much it would catch.

Above the limit verify checks a seeded sample of entries (the smallest, median and largest by magnitude,
plus random ones) and compares u.v against its reference along random Rademacher directions u (entries
+-1).  A one-entry error v_k -> v_k (1 + delta) moves u.v by exactly delta v_k whatever u is, so the
directional checks catch it in every entry where delta |v_k| exceeds their tolerance, and the sample
catches it in the entries sampled.  ``power`` measures this for every entry at once (memory linear in n):
the fraction of nonzero entries where a relative error delta would fail a check, the probability that an
error planted in an entry drawn at random is caught.
"""

import numpy as np

# entries checked one by one above the entrywise limit: the smallest, median and largest and random ones;
# at n in the thousands the Rademacher directions give the power (every entry), the sample a second look
SAMPLED = 10
RADEMACHER = 2  # random +-1 directions for the directional checks
POWER_DELTAS = (1e-4, 1e-6, 1e-8, 1e-10)


def entries(magnitude, count, rng):
    """The smallest nonzero, median and largest entries by magnitude, then random others: ``count`` in all,
    sorted (every entry when count >= n)."""
    n = magnitude.size
    if count >= n:
        return np.arange(n)
    nonzero = np.nonzero(magnitude)[0]
    order = nonzero[np.argsort(magnitude[nonzero], kind="stable")] if nonzero.size else np.arange(n)
    chosen = {int(order[0]), int(order[len(order) // 2]), int(order[-1])}
    for k in rng.permutation(n):
        if len(chosen) >= count:
            break
        chosen.add(int(k))
    return np.array(sorted(chosen))


def rademacher(n, count, rng):
    return rng.choice([-1.0, 1.0], size=(count, n))


def power(claim, directional, sampled, deltas=POWER_DELTAS):
    """{delta: the fraction of nonzero entries where a relative error delta fails some check whichever its
    sign (an error may cancel one the claim already has)}.

    ``directional``: [(u, error u.claim - reference, tolerance)]; ``sampled``: (indices, errors claim_i -
    reference_i, tolerances).  A planted error moves each error by +-delta claim_k (times u_k)."""
    nonzero = claim != 0
    indices, errors, tolerances = sampled
    out = {}
    for delta in deltas:
        caught = np.ones(claim.size, bool)
        for shift in (delta * claim, -delta * claim):
            by_either = np.zeros(claim.size, bool)
            for u, error, tolerance in directional:
                by_either |= np.abs(error + shift * u) > tolerance
            by_either[indices] |= np.abs(errors + shift[indices]) > tolerances
            caught &= by_either
        out[delta] = float(caught[nonzero].mean()) if nonzero.any() else 0.0
    return out


def caught_in_every_entry(directional):
    """The absolute error in one entry above which every entry's error fails a directional check: the
    smallest tolerance plus the error already along that direction."""
    return min((tolerance + abs(error) for _, error, tolerance in directional), default=np.inf)
