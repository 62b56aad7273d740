"""More REAL published derivative code, for testing a derivative checker (beside tests/published/published.py).

Libraries (none of statsmodels, scikit-learn, scipy, autograd, torch, jax is the library whose derivative is claimed):

- lifelines: CoxPHFitter's hand-written Efron partial log-likelihood, gradient and Hessian
  (``_get_efron_values_batch``, ``_get_efron_values_single``) and CoxTimeVaryingFitter's ``_get_gradients``.
- glum: GLM distributions' analytic row-wise gradient / negative Hessian (``rowwise_gradient_hessian``, Cython
  kernels) of minus half the deviance (``eta_mu_deviance``), and ``log_likelihood`` with ``_score_matrix`` /
  ``_observed_information`` / ``_fisher_information``.
- scikit-survival: CoxPHOptimizer's hand-written mean negative partial log-likelihood (Breslow and Efron ties,
  ridge penalty), gradient and Hessian (``nlog_likelihood``, ``update``).
- GPy (with paramz): ``Model._grads`` (objective_function_gradients + the Logexp transform) of
  ``objective_function`` for GP regression and sparse GP regression (inducing inputs), and the
  likelihoods' ``logpdf`` / ``dlogpdf_df`` / ``d2logpdf_df2``.

``cases(sizes=("small",))`` returns a list of dicts in the format of published.py:
    name, library, version (read at run time), source, size, fun (x -> float), x (float64 vector),
    grad (x -> array), optionally hess (x -> matrix, small only) and hessvec ((x, v) -> array),
    expected: {"grad": "right"/"wrong", ...}, why (one line), optionally missing_term.
Each case also carries ``ref`` (data for selfcheck.py's independent mpmath reference; ignored by a checker).

``published.planted(case, kind, rng, claim=None)`` and ``published.verify_kwargs(case)`` work on these cases
unchanged; ``planted`` and ``verify_kwargs`` are re-exported here (imported from published.py beside this file).
"""

import warnings

import numpy as np

# the case format's helpers and the checker's keywords and plants, shared with the corpus's first module beside this
# file (tests/published/published.py)
from published import _case, _quiet, planted, verify_kwargs  # noqa: E402,F401

LIBRARIES = ["numpy", "scipy", "pandas", "lifelines", "glum", "GPy", "scikit-survival"]
SIZES = {"small", "large"}
LARGE_N = (2_000, 20_000)


def _dense(m):
    """tabmat matrices refuse numpy ufuncs: convert."""
    return np.asarray(m.toarray() if hasattr(m, "toarray") else m, dtype=float)


def _arr(x):
    return np.asarray(x, dtype=float)


# ------------------------------------------------------------------------------------------------------- lifelines

def _cox_data(n_obs=80, d=4, seed=11):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_obs, d))
    beta = np.array([0.6, -0.4, 0.3, 0.0])[:d]
    # rounded times: many ties, so the Efron correction is exercised
    T = np.round(rng.exponential(1.0 / np.exp(X @ beta)) * 4) / 4 + 0.25
    E = rng.random(n_obs) < 0.75
    w = rng.uniform(0.5, 2.0, n_obs)
    order = np.lexsort((E, T))  # sorted on T, then E (censored first within a tie), as CoxPHFitter.fit sorts
    return rng, X[order], T[order], E[order], w[order]


@_quiet
def _lifelines_cases():
    import pandas as pd
    from lifelines import CoxPHFitter, CoxTimeVaryingFitter

    out = []
    lib = "lifelines"
    rng, X, T, E, w = _cox_data()
    n_obs, d = X.shape
    cols = [f"x{j}" for j in range(d)]
    Xdf = pd.DataFrame(X, columns=cols)
    Ts, Es, Ws = pd.Series(T), pd.Series(E), pd.Series(w)
    df = Xdf.assign(T=T, E=E.astype(int), w=w)
    cph = CoxPHFitter()
    cph.fit(df, "T", "E", weights_col="w", robust=True,
            fit_options={"precision": 1e-13, "r_precision": 1e-16, "max_steps": 200})
    b_hat = cph.params_.values.astype(float)
    b_rand = b_hat + 0.3 * rng.standard_normal(d)
    ref = {"kind": "efron", "X": X, "T": T, "E": E, "w": w}
    for method in ("batch", "single"):
        calc = getattr(cph._model, f"_get_efron_values_{method}")  # the fitted SemiParametricPHFitter

        def values(b, calc=calc):
            return calc(Xdf, Ts, Es, Ws, None, _arr(b).copy())
        fun = _quiet(lambda b, values=values: float(values(b)[2]))
        grad = _quiet(lambda b, values=values: np.array(values(b)[1], dtype=float))
        hess = _quiet(lambda b, values=values: np.array(values(b)[0], dtype=float))
        for label, point in (("random", b_rand), ("mle", b_hat)):
            out.append(_case(f"lifelines.CoxPH.efron_{method}@{label}", lib,
                             f"lifelines.fitters.coxph_fitter.SemiParametricPHFitter._get_efron_values_{method} "
                             "(returns hessian, gradient, log_lik)", fun, point, grad,
                             {"grad": "right", "hess": "right"},
                             "hand-written gradient and Hessian of the weighted Efron partial log-likelihood (ties)",
                             hess=hess, ref=ref))

    # CoxTimeVaryingFitter: (start, stop] intervals, two per subject, covariates change at the split
    n_sub = 40
    start, stop, ev, ids, rows = [], [], [], [], []
    for i in range(n_sub):
        t1 = np.round(rng.uniform(0.5, 2.0) * 4) / 4
        t2 = t1 + np.round(rng.exponential(1.5) * 4) / 4 + 0.25
        x1 = rng.standard_normal(3)
        x2 = x1 + 0.5 * rng.standard_normal(3)
        died = rng.random() < 0.7
        start += [0.0, t1]
        stop += [t1, t2]
        ev += [False, bool(died)]
        ids += [i, i]
        rows += [x1, x2]
    Xtv = np.array(rows)
    start, stop, ev = np.array(start), np.array(stop), np.array(ev)
    wtv = rng.uniform(0.5, 2.0, start.size)
    dtv = pd.DataFrame(Xtv, columns=["a", "b", "c"]).assign(id=ids, start=start, stop=stop, event=ev.astype(int),
                                                               w=wtv)
    ctv = CoxTimeVaryingFitter()
    ctv.fit(dtv, id_col="id", event_col="event", start_col="start", stop_col="stop", weights_col="w")
    b_hat = ctv.params_.values.astype(float)

    def tv_values(b):
        return CoxTimeVaryingFitter._get_gradients(Xtv, ev, start, stop, wtv, _arr(b).copy())
    ref = {"kind": "efron_tv", "X": Xtv, "start": start, "stop": stop, "E": ev, "w": wtv}
    for label, point in (("random", b_hat + 0.3 * rng.standard_normal(3)), ("mle", b_hat)):
        out.append(_case(f"lifelines.CoxTimeVarying.efron@{label}", lib,
                         "lifelines.fitters.cox_time_varying_fitter.CoxTimeVaryingFitter._get_gradients "
                         "(returns hessian, gradient, log_lik)",
                         _quiet(lambda b: float(tv_values(b)[2])), point,
                         _quiet(lambda b: np.array(tv_values(b)[1], dtype=float)),
                         {"grad": "right", "hess": "right"},
                         "hand-written gradient and Hessian of the weighted Efron partial log-likelihood over "
                         "(start, stop] risk sets", hess=_quiet(lambda b: np.array(tv_values(b)[0], dtype=float)),
                         ref=ref))
    return out


# ------------------------------------------------------------------------------------------------ scikit-survival

@_quiet
def _sksurv_cases():
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.linear_model.coxph import CoxPHOptimizer
    from sksurv.util import Surv

    out = []
    rng, X, T, E, _ = _cox_data(n_obs=70, seed=23)
    n_obs, d = X.shape
    alpha = 0.5
    y = Surv.from_arrays(event=E, time=T)
    for ties in ("breslow", "efron"):
        opt = CoxPHOptimizer(X, E, T, np.full(d, alpha), ties)

        def fun(w, opt=opt):
            return float(opt.nlog_likelihood(_arr(w)))

        def grad(w, opt=opt):
            opt.update(_arr(w))
            return opt.gradient.copy()

        def hess(w, opt=opt):
            opt.update(_arr(w))
            return np.array(opt.hessian, dtype=float)

        def no_penalty(w, opt=opt):  # the planted "missing term": the ridge penalty's gradient alpha w / n
            opt.update(_arr(w))
            return opt.gradient.copy() - alpha * _arr(w) / n_obs
        est = CoxPHSurvivalAnalysis(alpha=alpha, ties=ties, tol=1e-13, n_iter=200).fit(X, y)
        w_hat = est.coef_.astype(float)
        for label, point in (("random", w_hat + 0.3 * rng.standard_normal(d)), ("mle", w_hat)):
            out.append(_case(f"sksurv.CoxPHOptimizer.{ties}@{label}", "scikit-survival",
                             f"sksurv.linear_model.coxph.CoxPHOptimizer(ties='{ties}').nlog_likelihood / update "
                             "(.gradient, .hessian)", _quiet(fun), point, _quiet(grad),
                             {"grad": "right", "hess": "right"},
                             f"hand-written gradient and Hessian of the mean negative {ties} partial log-likelihood "
                             "+ alpha |w|^2 / (2 n)", hess=_quiet(hess), missing_term=_quiet(no_penalty),
                             ref={"kind": "sksurv_cox", "X": X, "T": T, "E": E, "alpha": alpha, "ties": ties}))
    return out


# ------------------------------------------------------------------------------------------------------------ glum

def _glum_dists():
    from glum._distribution import (GammaDistribution, InverseGaussianDistribution, NegativeBinomialDistribution,
                                    PoissonDistribution, TweedieDistribution)
    return {"Poisson": (PoissonDistribution(), "poisson"),
            "Gamma": (GammaDistribution(), "gamma"),
            "Tweedie.p1.5": (TweedieDistribution(1.5), "tweedie1.5"),
            "NegativeBinomial.theta0.7": (NegativeBinomialDistribution(0.7), "negbin"),
            "InverseGaussian": (InverseGaussianDistribution(), "invgauss")}


def _glum_y(kind, mu, rng):
    if kind in ("poisson",):
        return rng.poisson(mu).astype(float)
    if kind == "negbin":  # variance mu + 0.7 mu^2
        r = 1 / 0.7
        return rng.negative_binomial(r, r / (r + mu)).astype(float)
    if kind == "invgauss":
        return rng.wald(mu, 4.0)
    return mu * rng.gamma(3.0, 1 / 3.0, mu.size)


def _glum_fit(dist, link, X, y, sw):
    from glum import GeneralizedLinearRegressor
    model = GeneralizedLinearRegressor(family=dist, link=link, alpha=0, fit_intercept=True, gradient_tol=1e-12,
                                       max_iter=500)
    model.fit(X, y, sample_weight=sw)
    return np.r_[model.intercept_, model.coef_].astype(float)


@_quiet
def _glum_small():
    import tabmat
    from glum._link import LogLink

    out = []
    lib = "glum"
    rng = np.random.default_rng(5)
    n_obs, k = 60, 4
    X = rng.standard_normal((n_obs, k)) / np.sqrt(k)
    X1 = np.column_stack([np.ones(n_obs), X])
    eta0 = X1 @ np.array([0.3, 0.5, -0.4, 0.2, 0.1])
    sw = rng.uniform(0.5, 1.5, n_obs)
    Xt = tabmat.DenseMatrix(X)
    link = LogLink()
    for name, (dist, kind) in _glum_dists().items():
        y = _glum_y(kind, np.exp(eta0), rng)
        theta = float(getattr(dist, "theta", 0.0))

        def rows(b, dist=dist, y=y):
            eta = X1 @ _arr(b)
            mu = link.inverse(eta)
            return dist.rowwise_gradient_hessian(link, _arr(b), 1.0, Xt, y, sw, eta, mu)

        def fun(b, dist=dist, y=y):
            _, _, dev = dist.eta_mu_deviance(link, 0.0, X1 @ _arr(b), np.zeros(n_obs), y, sw)
            return -0.5 * float(dev)
        grad = _quiet(lambda b, rows=rows: X1.T @ rows(b)[0])
        hess = _quiet(lambda b, rows=rows: -(X1.T * rows(b)[1]) @ X1)
        fisher = name in ("NegativeBinomial.theta0.7", "InverseGaussian")
        b_hat = _glum_fit(dist, link, X, y, sw)
        b_rand = b_hat + 0.25 * rng.standard_normal(k + 1)
        why = ("gradient_rows is d(-deviance/2)/d eta; hessian_rows (documented as 'the negative Hessian of the log "
               "likelihood, row-wise') is ")
        if fisher:
            why += ("the expected (Fisher) weight w h'(eta)^2 / V(mu) for this distribution and log link, not the "
                    "observed one: -X' diag(hessian_rows) X is not the Hessian of -deviance/2 (IRLS convention)")
        else:
            why += "the observed weight here (specialised Cython kernel): -X' diag(hessian_rows) X is the Hessian"
        for label, point in (("random", b_rand), ("opt", b_hat)):
            out.append(_case(f"glum.{name}.log.rowwise@{label}", lib,
                             f"glum._distribution.{type(dist).__name__}.rowwise_gradient_hessian / eta_mu_deviance "
                             "(LogLink; grad = [1 X]' gradient_rows, hess = -[1 X]' diag(hessian_rows) [1 X])",
                             _quiet(fun), point, grad,
                             {"grad": "right", "hess": "wrong" if fisher else "right"}, why, hess=hess,
                             ref={"kind": "glm_dev", "X1": X1, "y": y, "w": sw, "family": kind, "theta": theta}))

    # log_likelihood at a fixed dispersion, with _score_matrix, _observed_information, _fisher_information
    dist, kind = _glum_dists()["Gamma"]
    y = _glum_y(kind, np.exp(eta0), rng)
    phi = 0.4
    Xt1 = tabmat.DenseMatrix(X)

    def mu_of(b):
        return link.inverse(X1 @ _arr(b))
    fun = _quiet(lambda b: float(dist.log_likelihood(y, mu_of(b), sw, dispersion=phi)))
    score = _quiet(lambda b: _dense(dist._score_matrix(link, Xt1, y, mu_of(b), sw, phi, True)).sum(0))
    obs = _quiet(lambda b: -_dense(dist._observed_information(link, Xt1, y, mu_of(b), sw, phi, True)))
    fis = _quiet(lambda b: -_dense(dist._fisher_information(link, Xt1, y, mu_of(b), sw, phi, True)))
    b_hat = _glum_fit(dist, link, X, y, sw)
    b_rand = b_hat + 0.25 * rng.standard_normal(k + 1)
    ref = {"kind": "glm_loglike", "X1": X1, "y": y, "w": sw, "family": "gamma", "phi": phi}
    src = ("glum._distribution.GammaDistribution.log_likelihood(dispersion=0.4) / _score_matrix(...).sum(0) / "
           "-_observed_information (LogLink, fit_intercept=True)")
    for label, point in (("random", b_rand), ("opt", b_hat)):
        out.append(_case(f"glum.Gamma.log.loglike_observed@{label}", lib, src, fun, point, score,
                         {"grad": "right", "hess": "right"},
                         "score matrix rows summed is the gradient of log_likelihood at a fixed dispersion; the "
                         "observed information is minus its Hessian", hess=obs, ref=ref))
    out.append(_case("glum.Gamma.log.loglike_fisher@random", lib, src.replace("_observed_information",
                                                                                "_fisher_information"),
                     fun, b_rand, score, {"grad": "right", "hess": "wrong"},
                     "_fisher_information is the expected information, documented as such: for the non-canonical "
                     "log link it differs from minus the Hessian of log_likelihood (a convention, not a bug)",
                     hess=fis, ref=ref))
    return out


@_quiet
def _glum_large(n):
    from glum._link import LogLink
    import tabmat
    out = []
    rng = np.random.default_rng(n + 3)
    n_obs = 50
    X = rng.standard_normal((n_obs, n)) / np.sqrt(n)
    sw = rng.uniform(0.5, 1.5, n_obs)
    link = LogLink()
    Xt = tabmat.DenseMatrix(X)
    dists = _glum_dists()
    for name in ("Poisson", "Gamma"):
        dist, kind = dists[name]
        y = _glum_y(kind, np.exp(X @ rng.standard_normal(n) + 0.3), rng)

        def rows(b, dist=dist, y=y):
            eta = X @ _arr(b)
            return dist.rowwise_gradient_hessian(link, _arr(b), 1.0, Xt, y, sw, eta, link.inverse(eta))

        def fun(b, dist=dist, y=y):
            return -0.5 * float(dist.eta_mu_deviance(link, 0.0, X @ _arr(b), np.zeros(n_obs), y, sw)[2])
        x = 0.5 * rng.standard_normal(n)
        out.append(_case(f"glum.{name}.log.rowwise.wide@n={n}", "glum",
                         f"glum._distribution.{type(dist).__name__}.rowwise_gradient_hessian / eta_mu_deviance "
                         "(LogLink, no intercept; grad = X' gradient_rows, Hv = -X'(hessian_rows * Xv))",
                         _quiet(fun), x, _quiet(lambda b, rows=rows: X.T @ rows(b)[0]),
                         {"grad": "right", "hessvec": "right"},
                         "row-wise gradient and observed negative Hessian weights of -deviance/2 (50 x n data; "
                         "random point: no finite optimum with n >> 50 unpenalised)",
                         hessvec=_quiet(lambda b, v, rows=rows: -X.T @ (rows(b)[1] * (X @ _arr(v)))), size="large",
                         ref={"kind": "glm_dev", "X1": X, "y": y, "w": sw, "family": kind, "theta": 0.0}))
    return out


# ------------------------------------------------------------------------------------------------------------- GPy

def _gpy_model_case(name, model, rng, expected, why, source, ref=None, optimize=True, perturb=0.3):
    def fun(x):
        model.optimizer_array = _arr(x)
        return float(model.objective_function())

    def grad(x):
        return np.array(model._grads(_arr(x)), dtype=float)
    x0 = model.optimizer_array.copy()
    pts = []
    if optimize:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.optimize("lbfgsb", max_iters=5000, messages=False)
        x_opt = model.optimizer_array.copy()
        pts = [("random", x_opt + perturb * rng.standard_normal(x_opt.size)), ("opt", x_opt)]
    else:
        pts = [("random", x0 + perturb * rng.standard_normal(x0.size))]
    return [_case(f"GPy.{name}@{label}", "GPy", source, _quiet(fun), p, _quiet(grad), expected[label], why,
                  ref=ref) for label, p in pts]


@_quiet
def _gpy_small():
    import GPy

    out = []
    rng = np.random.default_rng(8)
    src_model = ("paramz.Model._grads (GPy objective_function_gradients chained through the Logexp transform) of "
                 "paramz.Model.objective_function at optimizer_array")
    # exact GP regression, ARD RBF + linear kernel
    X = rng.uniform(-3, 3, (30, 2))
    Y = np.sin(X[:, :1]) + 0.3 * X[:, 1:] + 0.1 * rng.standard_normal((30, 1))
    m = GPy.models.GPRegression(X, Y, GPy.kern.RBF(2, ARD=True) + GPy.kern.Linear(2))
    out += _gpy_model_case("GPRegression.RBF_ARD+Linear", m, rng, {"random": {"grad": "right"}, "opt": {"grad": "right"}},
                           "analytic gradient of the negative log marginal likelihood in the softplus-transformed "
                           "hyperparameters (variance, 2 lengthscales, linear variance, noise)",
                           src_model + "; GPy.models.GPRegression(RBF(2, ARD=True) + Linear(2))",
                           ref={"kind": "gp_rbf_lin", "X": X, "Y": Y.ravel()})
    # sparse GP regression: inducing inputs are parameters
    X = rng.uniform(-3, 3, (40, 1))
    Y = np.sin(2 * X) + 0.15 * rng.standard_normal((40, 1))
    m = GPy.models.SparseGPRegression(X, Y, GPy.kern.RBF(1), Z=np.linspace(-2.5, 2.5, 6)[:, None])
    out += _gpy_model_case("SparseGPRegression.RBF.Z6", m, rng,
                           {"random": {"grad": "right"}, "opt": {"grad": "right"}},
                           "analytic gradient of the variational (Titsias) bound in 6 inducing inputs and the "
                           "transformed hyperparameters", src_model + "; GPy.models.SparseGPRegression(Z=6 inducing)",
                           perturb=0.1)
    # (Laplace inference was tried and left out: with its mode-finding tolerance tightened to 1e-10..1e-13 the
    # objective raises scipy BracketError at points 1e-7 away, and at the default 1e-4 it is noisy; see README.)
    out += _gpy_lik_cases(6, "small", rng)
    return out


def _gpy_lik_cases(n, size, rng):
    import GPy
    out = []
    specs = []
    y_t = rng.standard_normal(n)
    specs.append(("StudentT.v4.s0.3", GPy.likelihoods.StudentT(deg_free=4.0, sigma2=0.3), y_t,
                  rng.uniform(-1.5, 1.5, n), y_t.copy(), {"lik": "studentt", "v": 4.0, "s2": 0.3}))
    y_p = rng.poisson(2.0, n).astype(float) + 1.0
    specs.append(("Poisson.log", GPy.likelihoods.Poisson(), y_p, rng.uniform(-1, 2, n), np.log(y_p),
                  {"lik": "poisson"}))
    if size == "small":
        y_b = (rng.random(n) < 0.5).astype(float)
        specs.append(("Bernoulli.probit", GPy.likelihoods.Bernoulli(), y_b, rng.uniform(-2, 2, n), None,
                      {"lik": "bernoulli"}))
    for name, lik, y, f_rand, f_opt, ref in specs:
        yc = y[:, None]

        def fun(f, lik=lik, yc=yc):
            return float(np.sum(lik.logpdf(_arr(f)[:, None], yc)))

        def grad(f, lik=lik, yc=yc):
            return np.array(lik.dlogpdf_df(_arr(f)[:, None], yc), dtype=float).ravel()

        def d2(f, lik=lik, yc=yc):
            return np.array(lik.d2logpdf_df2(_arr(f)[:, None], yc), dtype=float).ravel()
        kw = {"hessvec": _quiet(lambda f, v, d2=d2: d2(f) * _arr(v))}
        expected = {"grad": "right", "hessvec": "right"}
        if size == "small":
            kw["hess"] = _quiet(lambda f, d2=d2: np.diag(d2(f)))
            expected["hess"] = "right"
        pts = [("random", f_rand)] + ([("opt", f_opt)] if f_opt is not None else [])
        cls = type(lik).__name__
        for label, p in pts:
            out.append(_case(f"GPy.likelihoods.{name}.sum@{label}.n={n}", "GPy",
                             f"GPy.likelihoods.{cls}.logpdf / dlogpdf_df / d2logpdf_df2 (summed over points)",
                             _quiet(fun), p, _quiet(grad), expected,
                             "hand-written first and second derivatives of the likelihood in the latent f "
                             "(d2logpdf_df2 is the diagonal of the Hessian: points are independent)",
                             size=size, ref=dict(ref, kind="lik", y=y), **kw))
    return out


# ------------------------------------------------------------------------------------------------------------ API

def cases(sizes=("small",)):
    """The corpus: a list of case dicts (see the module docstring)."""
    sizes = (sizes,) if isinstance(sizes, str) else tuple(sizes)
    unknown = set(sizes) - SIZES
    if unknown:
        raise ValueError(f"unknown sizes {sorted(unknown)}; choose from {sorted(SIZES)}")
    out = []
    if "small" in sizes:
        out += _lifelines_cases()
        out += _sksurv_cases()
        out += _glum_small()
        out += _gpy_small()
    if "large" in sizes:
        rng = np.random.default_rng(4053)
        for n in LARGE_N:
            out += _glum_large(n)
            out += _gpy_lik_cases(n, "large", rng)
    return out
