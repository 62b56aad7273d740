"""Independent self-check of every claim in more.py.

Reference per case:
- mpmath at 50 digits where the function is re-written here in mpmath (from the model's textbook definition, not
  from the library's derivative code): the Efron partial likelihood (lifelines), GLM row losses (glum), the
  likelihoods' log densities (GPy), the exact GP log marginal likelihood (GPy GPRegression). Derivatives of the
  mpmath function by mpmath.diff (numerical differentiation at raised working precision); for sums of row
  functions of a linear predictor (glum, GPy likelihoods) the chain rule through the linear map is exact:
  grad = X' l'(eta), H = X' diag(l''(eta)) X. The mpmath function is checked against the library's function
  (difference between two points, `fun_match`).
- otherwise (GPy SparseGPRegression) float64 central differences of the library's fun with two Richardson steps.
Writes selfcheck_more_results.json (and prints a table). Usage: python selfcheck_more.py [--small-only]
"""

import json
import os
import sys
import time
import warnings

import mpmath as mp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import more  # noqa: E402

mp.mp.dps = 50
EPS = np.finfo(float).eps


def M(v):
    return mp.mpf(float(v))


def softplus(x):
    return mp.log1p(mp.exp(x))


# ------------------------------------------------------------------------------------------- mpmath functions

def efron_loglik(beta, X, T, E, w, start=None, breslow=False):
    """Weighted Efron partial log-likelihood (Efron 1977; weights as in R survival / lifelines):
    sum over distinct event times t of  sum_{deaths} w_i x_i'b - wbar * sum_{k<m} log(R(t) - k/m D(t)),
    R(t) = sum_{at risk} w_j exp(x_j'b), D(t) = sum_{deaths at t} w_j exp(x_j'b), wbar = mean weight of deaths.
    At risk: T_j >= t (or start_j < t <= stop_j with start given)."""
    n, d = X.shape
    phi = [M(w[i]) * mp.exp(mp.fsum(M(X[i, j]) * beta[j] for j in range(d))) for i in range(n)]
    total = mp.mpf(0)
    for t in np.unique(T[E]):
        risk = [i for i in range(n) if (T[i] >= t if start is None else (start[i] < t <= T[i]))]
        deaths = [i for i in risk if E[i] and T[i] == t]
        m = len(deaths)
        R = mp.fsum(phi[i] for i in risk)
        D = mp.fsum(phi[i] for i in deaths)
        wbar = mp.fsum(M(w[i]) for i in deaths) / m
        total += mp.fsum(M(w[i]) * mp.fsum(M(X[i, j]) * beta[j] for j in range(d)) for i in deaths)
        if breslow:  # Breslow ties: m log R(t)
            total -= wbar * m * mp.log(R)
        else:
            total -= wbar * mp.fsum(mp.log(R - mp.mpf(k) / m * D) for k in range(m))
    return total


def glm_row(family, y, w, theta=0.0, phi=None):
    """-w/2 unit_deviance(y, mu) with mu = exp(eta) (log link); with phi: the Gamma log-likelihood row."""
    y, w = M(y), M(w)

    def xlogy(a, b):
        return mp.mpf(0) if a == 0 else a * mp.log(b)
    if phi is not None:  # Gamma log density, shape w/phi, mean mu: k log(k y/mu) - k y/mu - log y - lgamma(k)
        k = w / M(phi)
        return lambda eta: k * mp.log(k * y / mp.exp(eta)) - k * y / mp.exp(eta) - mp.log(y) - mp.loggamma(k)
    if family == "poisson":
        dev = lambda mu: 2 * (xlogy(y, y / mu) - y + mu)
    elif family == "gamma":
        dev = lambda mu: 2 * (mp.log(mu / y) + y / mu - 1)
    elif family == "tweedie1.5":
        p = mp.mpf(1.5)
        dev = lambda mu: 2 * (y ** (2 - p) / ((1 - p) * (2 - p)) - y * mu ** (1 - p) / (1 - p) + mu ** (2 - p) / (2 - p))
    elif family == "negbin":  # variance mu + theta mu^2 (theta as stored by glum: float32)
        r = 1 / M(theta)
        dev = lambda mu: 2 * (xlogy(y, y / mu) - (y + r) * mp.log((y + r) / (mu + r)))
    elif family == "invgauss":
        dev = lambda mu: (y - mu) ** 2 / (y * mu ** 2)
    else:
        raise ValueError(family)
    return lambda eta: -w / 2 * dev(mp.exp(eta))


def lik_row(ref, y):
    y = M(y)
    if ref["lik"] == "studentt":
        v, s2 = M(ref["v"]), M(ref["s2"])
        c = mp.loggamma((v + 1) / 2) - mp.loggamma(v / 2) - mp.log(v * mp.pi * s2) / 2
        return lambda f: c - (v + 1) / 2 * mp.log(1 + (y - f) ** 2 / (v * s2))
    if ref["lik"] == "poisson":
        return lambda f: y * f - mp.exp(f) - mp.loggamma(y + 1)
    if ref["lik"] == "bernoulli":
        return lambda f: mp.log(mp.ncdf(f)) if y == 1 else mp.log(1 - mp.ncdf(f))
    raise ValueError(ref["lik"])


def gp_rbf_lin_nlml(theta, X, Y):
    """Negative log marginal likelihood of y ~ N(0, K + s I), K = v exp(-sum_j (x_j - x'_j)^2 / (2 l_j^2)) + c x'x'',
    parameters through softplus (paramz Logexp): theta = (v, l1, l2, c, s) in optimizer coordinates; GPy's
    ExactGaussianInference adds 1e-8 to s."""
    v, l1, l2, c, s = [softplus(t) for t in theta]
    n = X.shape[0]
    K = mp.matrix(n, n)
    for i in range(n):
        for j in range(i + 1):
            r2 = (M(X[i, 0]) - M(X[j, 0])) ** 2 / l1 ** 2 + (M(X[i, 1]) - M(X[j, 1])) ** 2 / l2 ** 2
            k = v * mp.exp(-r2 / 2) + c * (M(X[i, 0]) * M(X[j, 0]) + M(X[i, 1]) * M(X[j, 1]))
            if i == j:
                k += s + M(1e-8)  # ExactGaussianInference adds a fixed 1e-8 to the noise variance
            K[i, j] = K[j, i] = k
    L = mp.cholesky(K)
    y = mp.matrix([M(t) for t in Y])
    a = mp.lu_solve(K, y)
    logdet = 2 * mp.fsum(mp.log(L[i, i]) for i in range(n))
    return (mp.fsum(y[i] * a[i] for i in range(n)) + logdet + n * mp.log(2 * mp.pi)) / 2


# ----------------------------------------------------------------------------------------------- references

def mp_full(F, x, want_hess):
    """Gradient (and Hessian) of an mpmath function of len(x) variables by mpmath.diff."""
    n = len(x)
    xs = [M(t) for t in x]
    g = [mp.diff(lambda *a: F(list(a)), xs, tuple(int(k == i) for k in range(n))) for i in range(n)]
    H = None
    if want_hess:
        H = [[None] * n for _ in range(n)]
        for i in range(n):
            for j in range(i, n):
                order = [0] * n
                order[i] += 1
                order[j] += 1
                H[i][j] = H[j][i] = mp.diff(lambda *a: F(list(a)), xs, tuple(order))
    return g, H


def mp_rows(rows, A, x, v, want_hess):
    """For F(x) = sum_i l_i((A x)_i): grad = A' l'(Ax), Hv = A' (l''(Ax) * Av), H = A' diag(l'') A (mpmath)."""
    eta = [mp.fsum(M(a) * M(b) for a, b in zip(A[i], x)) for i in range(A.shape[0])] if A is not None else \
        [M(t) for t in x]
    d1 = [mp.diff(r, e) for r, e in zip(rows, eta)]
    d2 = [mp.diff(r, e, 2) for r, e in zip(rows, eta)]
    if A is None:  # identity map (likelihood sums): entrywise
        g = d1
        hv = [a * M(b) for a, b in zip(d2, v)] if v is not None else None
        H = d2 if want_hess else None  # diagonal
        return g, hv, H, "diag"
    m, n = A.shape
    g = [mp.fsum(M(A[i, j]) * d1[i] for i in range(m)) for j in range(n)]
    hv = None
    if v is not None:
        Av = [mp.fsum(M(a) * M(b) for a, b in zip(A[i], v)) * d2[i] for i in range(m)]
        hv = [mp.fsum(M(A[i, j]) * Av[i] for i in range(m)) for j in range(n)]
    H = None
    if want_hess:
        H = [[mp.fsum(M(A[i, j]) * d2[i] * M(A[i, k]) for i in range(m)) for k in range(n)] for j in range(n)]
    return g, hv, H, "full"


def mp_function(case):
    """(F on a list of mpf, rows or None, A) for the case's ref."""
    ref = case.get("ref") or {}
    kind = ref.get("kind")
    if kind == "efron":
        return (lambda b: efron_loglik(b, ref["X"], ref["T"], ref["E"], ref["w"])), None, None
    if kind == "efron_tv":
        return (lambda b: efron_loglik(b, ref["X"], ref["stop"], ref["E"], ref["w"], start=ref["start"])), None, None
    if kind == "sksurv_cox":  # mean negative partial log-likelihood + alpha |w|^2 / (2 n), unit weights
        n_obs = ref["X"].shape[0]
        ones = np.ones(n_obs)
        return (lambda b: -efron_loglik(b, ref["X"], ref["T"], ref["E"], ones, breslow=ref["ties"] == "breslow")
                / n_obs + M(ref["alpha"]) * mp.fsum(t * t for t in b) / (2 * n_obs)), None, None
    if kind in ("glm_dev", "glm_loglike"):
        phi = ref.get("phi")
        rows = [glm_row(ref["family"], y, w, ref.get("theta", 0.0), phi) for y, w in zip(ref["y"], ref["w"])]
        A = ref["X1"]
        F = lambda b: mp.fsum(r(mp.fsum(M(a) * t for a, t in zip(A[i], b))) for i, r in enumerate(rows))
        return F, rows, A
    if kind == "lik":
        rows = [lik_row(ref, y) for y in ref["y"]]
        return (lambda f: mp.fsum(r(t) for r, t in zip(rows, f))), rows, None
    if kind == "gp_rbf_lin":
        return (lambda t: gp_rbf_lin_nlml(t, ref["X"], ref["Y"])), None, None
    return None, None, None


def richardson_grad(fun, x, h0=1e-3):
    """Central differences at h, h/2, h/4 per coordinate, two Richardson steps; error estimate = last correction
    plus the function's rounding noise divided by the smallest step."""
    n = x.size
    g = np.empty(n)
    err = np.empty(n)
    # the function's own rounding noise (x moved in its last bits), amplified by the smallest step
    f0 = fun(x)
    rng = np.random.default_rng(13)
    fnoise = max(abs(fun(x * (1 + rng.uniform(-2, 2, n) * EPS)) - f0) for _ in range(4)) + EPS * abs(f0)
    for i in range(n):
        h = h0 * (1 + abs(x[i]))
        D = []
        for k in range(3):
            hk = h / 2 ** k
            e = np.zeros(n)
            e[i] = hk
            D.append((fun(x + e) - fun(x - e)) / (2 * hk))
        R1 = [(4 * D[1] - D[0]) / 3, (4 * D[2] - D[1]) / 3]
        g[i] = (16 * R1[1] - R1[0]) / 15
        err[i] = abs(g[i] - R1[1]) + 8 * fnoise / (h / 4)
    return g, err


def claim_noise(fn, x, *args):
    """Rounding of the claim itself: its spread over 3 copies of x moved in their last bits."""
    base = np.asarray(fn(x, *args), dtype=float)
    rng = np.random.default_rng(11)
    noise = np.zeros_like(base)
    for _ in range(3):
        moved = x * (1 + rng.uniform(-2, 2, x.size) * EPS)
        noise = np.maximum(noise, np.abs(np.asarray(fn(moved, *args), dtype=float) - base))
    return base, noise


def compare(claim, ref, noise, ref_err, floor):
    diff = np.abs(claim - ref)
    scale = np.max(np.abs(ref))
    norm_rel = float(np.max(diff) / scale) if scale > 0 else float(np.max(diff))
    ent = diff / np.maximum(np.abs(ref), 1e-300)
    mask = np.abs(ref) > 1e-6 * scale  # entrywise relative error over entries not ~0 relative to the largest
    entry_rel = float(np.max(ent[mask])) if np.any(mask) else norm_rel
    allowed = 1e-8 * scale + 10 * ref_err + 100 * (noise + EPS * np.abs(claim) + floor)
    ok = bool(np.all(diff <= allowed))
    clearly_wrong = bool(np.max(diff - allowed) > 1e-4 * max(scale, 1e-300)) if not ok else False
    verdict = "right" if ok else ("wrong" if clearly_wrong else "unclear")
    return {"rel_err_normwise": norm_rel, "rel_err_entrywise": entry_rel, "abs_err_max": float(np.max(diff)),
            "ref_norm": float(scale), "verdict": verdict}


def check_case(case):
    x = case["x"]
    n = x.size
    fun = case["fun"]
    out = {"name": case["name"], "library": case["library"], "version": case["version"], "size": case["size"],
           "n": int(n), "source": case["source"], "expected": case["expected"], "claims": {}}
    F, rows, A = mp_function(case)
    v = np.random.default_rng(3).standard_normal(n)
    fx = float(np.real(fun(x)))
    floor_g = EPS * abs(fx) / (1 + np.max(np.abs(x)))
    t0 = time.time()
    refs = {}
    if F is not None:
        # the mpmath function is the library's function: compare differences between x and a nearby point
        y = x + 0.01 * (1 + np.abs(x)) * np.random.default_rng(5).standard_normal(n)
        d_lib = float(np.real(fun(y))) - fx
        if rows is not None:
            d_mp = F([M(t) for t in y]) - F([M(t) for t in x])
        else:
            d_mp = F([M(t) for t in y]) - F([M(t) for t in x])
        out["fun_match"] = float(abs(d_lib - float(d_mp)) / max(abs(float(d_mp)), 1e-300))
        want_h = case.get("hess") is not None
        if rows is not None:
            g, hv, H, shape = mp_rows(rows, A, x, v if case.get("hessvec") is not None else None, want_h)
            refs["grad"] = np.array([float(t) for t in g])
            if hv is not None:
                refs["hessvec"] = np.array([float(t) for t in hv])
            if H is not None:
                refs["hess"] = np.diag([float(t) for t in H]) if shape == "diag" else \
                    np.array([[float(t) for t in r] for r in H])
        else:
            g, H = mp_full(F, list(x), want_h or case.get("hessvec") is not None)
            refs["grad"] = np.array([float(t) for t in g])
            if H is not None:
                Hf = np.array([[float(t) for t in r] for r in H])
                if want_h:
                    refs["hess"] = Hf
                if case.get("hessvec") is not None:
                    refs["hessvec"] = Hf @ v
        method = "mpmath 50 digits"
        ref_err = {k: 0.0 for k in refs}
    else:
        g, e = richardson_grad(fun, x)
        refs["grad"] = g
        ref_err = {"grad": e}
        method = "float64 central differences, 2 Richardson steps"
        if case.get("hess") is not None or case.get("hessvec") is not None:
            raise NotImplementedError("no Hessian reference without mpmath in this corpus")
    out["reference"] = method
    for claim in ("grad", "hess", "hessvec"):
        if case.get(claim) is None:
            continue
        if claim == "hessvec":
            val, noise = claim_noise(case["hessvec"], x, v)
        else:
            val, noise = claim_noise(case[claim], x)
        res = compare(val, refs[claim], noise, ref_err.get(claim, 0.0), floor_g if claim == "grad" else 0.0)
        res["expected"] = case["expected"][claim]
        res["agrees"] = res["verdict"] == res["expected"]
        out["claims"][claim] = res
    out["seconds"] = round(time.time() - t0, 2)
    return out


# ------------------------------------------------------------------- what the "wrong" Hessians are, at 50 digits

def fisher_explanations(cases):
    """For the glum claims expected wrong: compare the claim with the 50-digit expected (Fisher) information
    X' diag(w h'(eta)^2 / V(mu)) X / phi and with the 50-digit observed one."""
    out = {}
    for c in cases:
        if c["library"] != "glum" or c["expected"].get("hess") != "wrong":
            continue
        ref = c["ref"]
        X1, y, w = ref["X1"], ref["y"], ref["w"]
        b = c["x"]
        phi = ref.get("phi", 1.0)
        theta = ref.get("theta", 0.0)
        eta = [mp.fsum(M(a) * M(t) for a, t in zip(X1[i], b)) for i in range(X1.shape[0])]
        mu = [mp.exp(e) for e in eta]
        fam = ref["family"]
        V = {"negbin": lambda m: m + M(theta) * m ** 2, "invgauss": lambda m: m ** 3, "gamma": lambda m: m ** 2}[fam]
        fis_w = [M(wi) * m ** 2 / V(m) / M(phi) for wi, m in zip(w, mu)]
        Hf = -np.array([[float(mp.fsum(M(X1[i, j]) * fis_w[i] * M(X1[i, k]) for i in range(len(mu))))
                         for k in range(X1.shape[1])] for j in range(X1.shape[1])])
        claim = np.asarray(c["hess"](b), dtype=float)
        out[c["name"]] = {"claim_vs_50digit_fisher_rel_err": float(np.max(np.abs(claim - Hf)) / np.max(np.abs(Hf)))}
    return out


def main():
    sizes = ("small",) if "--small-only" in sys.argv else ("small", "large")
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = more.cases(sizes)
    built = time.time() - t0
    results = []
    for c in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = check_case(c)
        results.append(r)
        for claim, res in r["claims"].items():
            print(f"{r['name']:55s} {claim:7s} n={r['n']:6d} {r['reference'][:8]:8s} "
                  f"norm={res['rel_err_normwise']:.1e} entry={res['rel_err_entrywise']:.1e} "
                  f"{res['verdict']:7s} expected={res['expected']:5s} {'ok' if res['agrees'] else 'DISAGREE'}"
                  f"  fun_match={r.get('fun_match', float('nan')):.1e}", flush=True)
    disagree = [(r["name"], k) for r in results for k, v in r["claims"].items() if not v["agrees"]]
    bad_match = [r["name"] for r in results if r.get("fun_match", 0) > 1e-9]
    summary = {"cases": len(results), "claims": sum(len(r["claims"]) for r in results), "disagree": disagree,
               "mpmath_function_mismatch": bad_match, "build_seconds": round(built, 2),
               "total_seconds": round(time.time() - t0, 1),
               "fisher_explanations": fisher_explanations([c for c in cases if c["size"] == "small"])}
    with open(os.path.join(HERE, "selfcheck_more_results.json"), "w") as fh:
        json.dump({"summary": summary, "results": results}, fh, indent=1, default=str)
    print(json.dumps(summary, indent=1, default=str))
    return 0 if not disagree and not bad_match else 1


if __name__ == "__main__":
    sys.exit(main())
