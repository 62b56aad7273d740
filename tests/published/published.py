"""A corpus of REAL published derivative code, for testing a derivative checker.

``cases(sizes=("small",))`` returns a list of dicts:

    name, library, version (read at run time), source (module path of the claim),
    fun (x -> float), x (float64 vector), grad (x -> array),
    optionally hess (x -> matrix) and hessvec ((x, v) -> array),
    expected: {"grad": "right"/"wrong", "hess": ..., "hessvec": ...},
    why: one line on the expectation, missing_term (optional): a grad with one term left out.

Every claim is the library's OWN analytic code (autograd's claims are its own autodiff).
``planted(case, kind, rng, claim=None)`` returns a copy with a realistic mistake planted in one claim.
``verify_kwargs(case)`` maps a case to ``checks.verify(fun, x, **kwargs)`` keyword arguments (hessvec -> hvp).
"""

import copy
import functools
import importlib.metadata
import warnings

import numpy as np

SIZES = {"small", "large"}
LARGE_N = (2_000, 20_000)


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _case(name, library, source, fun, x, grad, expected, why, hess=None, hessvec=None, size="small", **extra):
    case = {"name": name, "library": library, "version": _version(library), "source": source, "size": size,
            "fun": fun, "x": np.asarray(x, dtype=float).copy(), "grad": grad, "expected": dict(expected), "why": why}
    if hess is not None:
        case["hess"] = hess
    if hessvec is not None:
        case["hessvec"] = hessvec
    case.update(extra)
    return case


def _quiet(fn):
    """statsmodels/sklearn warn about perfect separation, overflow in exp etc.; the values are what we test."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    return wrapped


def _scalar(value):
    """A float; a complex number when the library computed in complex (so a complex-step check can run); the
    library's own object (an mpmath mpf) when it computed on objects (so a 50-digit check can run)."""
    value = np.asarray(value)
    if value.dtype == object:
        return value.item()
    return complex(value) if np.iscomplexobj(value) else float(value)


def _float(fn):
    return lambda x: _scalar(fn(x))


# ----------------------------------------------------------------------------------------------------- statsmodels

def _sm_data(n_obs=60, k=4, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n_obs), rng.standard_normal((n_obs, k - 1))])
    beta = np.linspace(0.5, -0.3, k)
    return rng, X, beta


@_quiet
def _statsmodels_cases():
    import statsmodels.api as sm
    from statsmodels.discrete.discrete_model import Logit, MNLogit, NegativeBinomial, Poisson, Probit
    from statsmodels.regression.linear_model import OLS

    out = []
    rng, X, beta = _sm_data()
    n_obs, k = X.shape
    lib = "statsmodels"

    def add(name, model, source, at, expected, why, loglike=None, score=None, hessian=None):
        loglike = loglike or model.loglike
        score = score or model.score
        hessian = hessian or model.hessian
        for label, point in at:
            out.append(_case(f"statsmodels.{name}@{label}", lib, source, _quiet(_float(loglike)), point,
                             _quiet(score), expected, why, hess=_quiet(hessian)))

    # OLS: loglike(params, scale=None) is the profile (concentrated) loglikelihood -n/2 log(ssr/n) + c.
    y = X @ beta + rng.standard_normal(n_obs)
    ols = OLS(y, X)
    b_hat = ols.fit().params
    b_rand = b_hat + 0.3 * rng.standard_normal(k)
    add("OLS.profile", ols, "statsmodels.regression.linear_model.OLS.loglike/score/hessian (scale=None)",
        [("random", b_rand), ("mle", b_hat)],
        {"grad": "right", "hess": "wrong"},
        "score is the gradient of the profile loglike; hessian(scale=None) has the X'X/ssr term halved "
        "(-n/2 X'X/ssr instead of -n X'X/ssr): it is the Hessian of no function (not integrable), equal to half "
        "the true Hessian at the MLE; statsmodels issue #9469 (open)")
    sigma2 = float(np.mean((y - X @ b_hat) ** 2))
    add("OLS.fixed_scale", ols, "statsmodels.regression.linear_model.OLS.loglike/score/hessian (scale fixed)",
        [("random", b_rand), ("mle", b_hat)], {"grad": "right", "hess": "right"},
        "with scale given, loglike is the Gaussian loglike in beta; score -(X'Xb - X'y)/s, hessian -X'X/s are exact",
        loglike=lambda b: ols.loglike(b, scale=sigma2), score=lambda b: ols.score(b, scale=sigma2),
        hessian=lambda b: ols.hessian(b, scale=sigma2))

    # discrete models: loglike, score, hessian are analytic
    eta = X @ beta
    y_bin = (rng.random(n_obs) < 1 / (1 + np.exp(-eta))).astype(float)
    y_cnt = rng.poisson(np.exp(0.5 * eta)).astype(float)
    for name, cls, yy in [("Logit", Logit, y_bin), ("Probit", Probit, y_bin), ("Poisson", Poisson, y_cnt)]:
        model = cls(yy, X)
        p_hat = model.fit(disp=0).params
        add(name, model, f"statsmodels.discrete.discrete_model.{name}.loglike/score/hessian",
            [("random", p_hat + 0.3 * rng.standard_normal(k)), ("mle", p_hat)],
            {"grad": "right", "hess": "right"}, "analytic score and Hessian of the model's loglike")

    mu = np.exp(eta)
    y_nb = rng.negative_binomial(2, 2 / (2 + mu)).astype(float)
    for method in ("nb2", "nb1", "geometric"):
        model = NegativeBinomial(y_nb, X, loglike_method=method)
        p_hat = model.fit(disp=0, maxiter=300).params
        add(f"NegativeBinomial.{method}", model,
            f"statsmodels.discrete.discrete_model.NegativeBinomial(loglike_method='{method}').loglike/score/hessian",
            [("random", p_hat * (1 + 0.2 * rng.standard_normal(p_hat.size))), ("mle", p_hat)],
            {"grad": "right", "hess": "right"},
            "after fit (_transparams False) loglike takes alpha itself; score and hessian are analytic in (beta, alpha)")
    # the same model before fit: _transparams is True, loglike and score read log(alpha), hessian reads alpha
    model = NegativeBinomial(y_nb, X, loglike_method="nb2")
    p = np.r_[beta * 0.8, np.log(0.7)]
    model.loglike(p)
    if getattr(model, "_transparams", False):
        add("NegativeBinomial.nb2.unfitted", model,
            "statsmodels.discrete.discrete_model.NegativeBinomial.loglike/score/hessian before fit()",
            [("random", p)], {"grad": "right", "hess": "wrong"},
            "before fit() the model has _transparams=True: loglike and score use alpha = exp(params[-1]) (score "
            "has the chain rule), hessian does not, so it is not the Hessian of loglike at that point")

    n_cls = 3
    y_cat = rng.integers(0, n_cls, n_obs)
    mn = MNLogit(y_cat, X)
    p_hat = np.asarray(mn.fit(disp=0).params).ravel(order="F")
    add("MNLogit", mn, "statsmodels.discrete.discrete_model.MNLogit.loglike/score/hessian",
        [("random", p_hat + 0.3 * rng.standard_normal(p_hat.size)), ("mle", p_hat)],
        {"grad": "right", "hess": "right"}, "analytic score and Hessian, params flattened column-major (K x (J-1))")

    # GLM families at a fixed scale (with scale=None the scale is re-estimated inside loglike, see below)
    fam = sm.families
    lnk = fam.links
    y_pos = np.exp(0.3 * eta) * rng.gamma(4.0, 0.25, n_obs)
    glms = [("Poisson.log", fam.Poisson(), y_cnt, 1.0),
            ("Binomial.logit", fam.Binomial(), y_bin, 1.0),
            ("Binomial.probit", fam.Binomial(lnk.Probit()), y_bin, 1.0),
            ("Binomial.cloglog", fam.Binomial(lnk.CLogLog()), y_bin, 1.0),
            ("Gaussian.identity", fam.Gaussian(), y, 1.3),
            ("Gaussian.log", fam.Gaussian(lnk.Log()), y_pos, 0.4),
            ("Gamma.log", fam.Gamma(lnk.Log()), y_pos, 0.25),
            ("Gamma.inverse_power", fam.Gamma(), y_pos, 0.25),
            ("InverseGaussian.log", fam.InverseGaussian(lnk.Log()), y_pos, 0.3),
            ("NegativeBinomial.log", fam.NegativeBinomial(alpha=0.5), y_nb, 1.0),
            ("Tweedie.log.p1.5", fam.Tweedie(var_power=1.5, eql=True), y_pos, 0.5)]
    for name, family, yy, scale in glms:
        model = sm.GLM(yy, X, family=family)
        p_hat = model.fit().params
        p_rand = p_hat + 0.05 * rng.standard_normal(k) * np.maximum(1, np.abs(p_hat))
        add(f"GLM.{name}", model, f"statsmodels.genmod.generalized_linear_model.GLM.loglike/score/hessian "
            f"(family {type(family).__name__}, link {type(family.link).__name__}, scale={scale}, observed=True)",
            [("random", p_rand), ("mle", p_hat)], {"grad": "right", "hess": "right"},
            "analytic score X'(score_factor) and observed Hessian -X' diag(hessian_factor) X at a fixed scale",
            loglike=functools.partial(model.loglike, scale=scale), score=functools.partial(model.score, scale=scale),
            hessian=functools.partial(model.hessian, scale=scale, observed=True))
        if name == "Gamma.log":
            add(f"GLM.{name}.expected_information", model,
                "statsmodels GLM.hessian(observed=False) (expected information)", [("random", p_rand)],
                {"grad": "right", "hess": "wrong"},
                "observed=False returns the expected (Fisher) Hessian, documented as such; for a non-canonical link "
                "it differs from the observed Hessian of loglike (a test of a checker, not a library bug)",
                loglike=functools.partial(model.loglike, scale=scale),
                score=functools.partial(model.score, scale=scale),
                hessian=functools.partial(model.hessian, scale=scale, observed=False))
        if name == "Gaussian.identity":
            add("GLM.Gaussian.identity.scale_None", model,
                "statsmodels GLM.loglike/score(scale=None): loglike re-estimates scale from params",
                [("random", p_rand), ("mle", p_hat)],
                {"grad": "wrong", "hess": "wrong"},
                "loglike(params) plugs in scale=Pearson chi2/df_resid computed from params, score and hessian treat "
                "that scale as a constant: not the derivatives of loglike(params) (at the MLE the scale's derivative "
                "vanishes, so the score is right there: see the @mle expectation)",
                loglike=model.loglike, score=model.score,
                hessian=functools.partial(model.hessian, observed=True))
            out[-1]["expected"] = {"grad": "right", "hess": "wrong"}
    return out


@_quiet
def _statsmodels_large(n):
    """GLM Poisson with n columns and 40 observations: memory O(n); hessvec from hessian_factor (no dense Hessian)."""
    import statsmodels.api as sm
    rng = np.random.default_rng(n)
    n_obs = 40
    X = rng.standard_normal((n_obs, n)) / np.sqrt(n)
    y = rng.poisson(np.exp(X @ rng.standard_normal(n))).astype(float)
    model = sm.GLM(y, X, family=sm.families.Poisson())
    x = 0.5 * rng.standard_normal(n)

    def hessvec(b, v):  # GLM.hessian is -X' diag(hessian_factor) X; its product without forming it
        return -X.T @ (model.hessian_factor(b, scale=1.0, observed=True) * (X @ v))
    return [_case(f"statsmodels.GLM.Poisson.log.wide@n={n}", "statsmodels",
                  "statsmodels GLM.loglike/score and GLM.hessian_factor (Hv = -X'(hessian_factor * Xv))",
                  _quiet(_float(functools.partial(model.loglike, scale=1.0))), x,
                  _quiet(functools.partial(model.score, scale=1.0)), {"grad": "right", "hessvec": "right"},
                  "analytic score; the Hessian product assembled from the library's own hessian_factor",
                  hessvec=_quiet(hessvec), size="large")]


# ---------------------------------------------------------------------------------------------------- scikit-learn

def _sk_linear_loss_cases(n_obs, n_features, size, dense, tag, losses=None):
    from scipy.optimize import minimize
    from sklearn._loss import loss as L
    from sklearn.linear_model._linear_loss import LinearModelLoss

    rng = np.random.default_rng(n_features + 17)
    X = rng.standard_normal((n_obs, n_features)) / np.sqrt(max(1, n_features / 10))
    eta = X @ (rng.standard_normal(n_features) / np.sqrt(n_features)) + 0.2
    y_by = {"binomial": (rng.random(n_obs) < 1 / (1 + np.exp(-eta))).astype(float),
            "poisson": rng.poisson(np.exp(eta)).astype(float),
            "gamma": np.exp(eta) * rng.gamma(3.0, 1 / 3.0, n_obs),
            "squared": eta + 0.3 * rng.standard_normal(n_obs),
            "multinomial": rng.integers(0, 3, n_obs).astype(float)}
    specs = [("HalfBinomialLoss", L.HalfBinomialLoss(), "binomial"),
             ("HalfPoissonLoss", L.HalfPoissonLoss(), "poisson"),
             ("HalfGammaLoss", L.HalfGammaLoss(), "gamma"),
             ("HalfTweedieLoss.p1.5", L.HalfTweedieLoss(power=1.5), "gamma"),
             ("HalfTweedieLossIdentity.p0", L.HalfTweedieLossIdentity(power=0.0), "squared"),
             ("HalfSquaredError", L.HalfSquaredError(), "squared"),
             ("HalfMultinomialLoss", L.HalfMultinomialLoss(n_classes=3), "multinomial")]
    if losses is not None:
        specs = [s for s in specs if s[0] in losses]
    sw = rng.uniform(0.5, 1.5, n_obs)
    l2 = 0.1
    out = []
    for name, base, kind in specs:
        yy = y_by[kind]
        lml = LinearModelLoss(base_loss=base, fit_intercept=True)
        n_dof = n_features + 1
        shape = (3, n_dof) if kind == "multinomial" else (n_dof,)
        kw = {"sample_weight": sw, "l2_reg_strength": l2}

        def fun(c, lml=lml, yy=yy, shape=shape):
            return float(lml.loss(c.reshape(shape), X, yy, **kw))

        def grad(c, lml=lml, yy=yy, shape=shape):
            return np.asarray(lml.loss_gradient(c.reshape(shape), X, yy, **kw)[1]).ravel()

        def grad_no_l2(c, lml=lml, yy=yy, shape=shape):  # the planted "missing term": the penalty's gradient
            return np.asarray(lml.gradient(c.reshape(shape), X, yy, sample_weight=sw, l2_reg_strength=0.0)).ravel()

        def hessvec(c, v, lml=lml, yy=yy, shape=shape):
            _, hp = lml.gradient_hessian_product(c.reshape(shape), X, yy, **kw)
            return np.asarray(hp(v.reshape(shape))).ravel()

        hess = None
        if dense and kind != "multinomial":
            def hess(c, lml=lml, yy=yy, shape=shape):
                return np.asarray(lml.gradient_hessian(c.reshape(shape), X, yy, **kw)[1])

        c_rand = 0.3 * rng.standard_normal(int(np.prod(shape)))
        points = [("random", c_rand)]
        if size == "small" or n_features <= 2_000:
            res = minimize(lambda c: (fun(c), grad(c)), np.zeros(c_rand.size), jac=True, method="L-BFGS-B",
                           options={"gtol": 1e-10, "maxiter": 500})
            points.append(("opt", res.x))
        expected = {"grad": "right", "hessvec": "right"}
        if hess is not None:
            expected["hess"] = "right"
        for label, point in points:
            out.append(_case(f"sklearn.LinearModelLoss.{name}{tag}@{label}", "scikit-learn",
                             f"sklearn.linear_model._linear_loss.LinearModelLoss({name}, fit_intercept=True)"
                             ".loss/loss_gradient/gradient_hessian_product" + ("/gradient_hessian" if hess else ""),
                             fun, point, grad, expected,
                             "analytic gradient and Hessian(-product) of the sample-weighted mean loss + l2/2 |w|^2",
                             hess=hess, hessvec=hessvec, size=size, missing_term=grad_no_l2))
    return out


def _sk_other_cases():
    from scipy.optimize import minimize
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
    from sklearn.linear_model._huber import _huber_loss_and_gradient
    from sklearn.neural_network import MLPRegressor

    out = []
    rng = np.random.default_rng(5)
    n_obs, p = 50, 4
    X = rng.standard_normal((n_obs, p))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.5 * rng.standard_normal(n_obs)
    y[:3] += 8.0  # outliers so both branches of the Huber loss are used
    eps, alpha, sw = 1.35, 1e-3, np.ones(n_obs)
    while True:  # coef, intercept, sigma; every residual at least 0.05 sigma from the switch |r| = eps sigma
        fit_intercept_w = np.r_[0.5 * rng.standard_normal(p), 0.1, 1.2]
        r = np.abs(y - X @ fit_intercept_w[:p] - fit_intercept_w[p]) / fit_intercept_w[-1]
        if np.min(np.abs(r - eps)) > 0.05:
            break

    def fun(w):
        return float(_huber_loss_and_gradient(w, X, y, eps, alpha, sw)[0])

    def grad(w):
        return _huber_loss_and_gradient(w, X, y, eps, alpha, sw)[1]

    res = minimize(lambda w: _huber_loss_and_gradient(w, X, y, eps, alpha, sw), fit_intercept_w, jac=True,
                   method="L-BFGS-B", bounds=[(None, None)] * (p + 1) + [(1e-8, None)], options={"gtol": 1e-10})
    for label, w in [("random", fit_intercept_w), ("opt", res.x)]:
        out.append(_case(f"sklearn.HuberRegressor._huber_loss_and_gradient@{label}", "scikit-learn",
                         "sklearn.linear_model._huber._huber_loss_and_gradient", fun, w, grad, {"grad": "right"},
                         "analytic gradient of the Huber loss in (coef, intercept, sigma); piecewise smooth, "
                         "x is away from the |r| = eps sigma switch"))

    # MLP: the packed gradient of the lbfgs objective (backprop), tanh activation so the loss is smooth
    Xm = rng.standard_normal((40, 3))
    ym = np.sin(Xm[:, 0]) + 0.1 * rng.standard_normal(40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPRegressor(hidden_layer_sizes=(5,), activation="tanh", solver="lbfgs", alpha=1e-2, max_iter=2000,
                           tol=1e-12, random_state=0).fit(Xm, ym)
    layer_units = [3, 5, 1]
    yy = ym.reshape(-1, 1)

    def loss_grad(c):
        activations = [Xm] + [None] * (len(layer_units) - 1)
        deltas = [None] * (len(activations) - 1)
        coef_grads = [np.empty((a, b)) for a, b in zip(layer_units[:-1], layer_units[1:])]
        intercept_grads = [np.empty(b) for b in layer_units[1:]]
        return mlp._loss_grad_lbfgs(np.asarray(c, dtype=float), Xm, yy, None, activations, deltas, coef_grads,
                                    intercept_grads)

    c_opt = np.concatenate([a.ravel() for a in mlp.coefs_] + [b.ravel() for b in mlp.intercepts_])
    c_rand = 0.5 * rng.standard_normal(c_opt.size)
    for label, c in [("random", c_rand), ("opt", c_opt)]:
        out.append(_case(f"sklearn.MLPRegressor._loss_grad_lbfgs.tanh@{label}", "scikit-learn",
                         "sklearn.neural_network.MLPRegressor._loss_grad_lbfgs (_backprop, packed coefs+intercepts)",
                         lambda c: float(loss_grad(c)[0]), c, lambda c: np.array(loss_grad(c)[1]), {"grad": "right"},
                         "backpropagation gradient of squared loss/2 + alpha/(2 n) |W|^2 (tanh hidden layer)"))

    # Gaussian process: log marginal likelihood and its analytic gradient in log-hyperparameters
    Xg = rng.uniform(-2, 2, (25, 2))
    yg = np.sin(Xg[:, 0]) * np.cos(Xg[:, 1]) + 0.1 * rng.standard_normal(25)
    kernel = ConstantKernel(1.0) * RBF(length_scale=[1.0, 1.5]) + WhiteKernel(0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gpr = GaussianProcessRegressor(kernel=kernel, random_state=0).fit(Xg, yg)
    theta_opt = gpr.kernel_.theta
    for label, th in [("random", theta_opt + 0.3 * rng.standard_normal(theta_opt.size)), ("opt", theta_opt)]:
        out.append(_case(f"sklearn.GaussianProcessRegressor.log_marginal_likelihood@{label}", "scikit-learn",
                         "sklearn.gaussian_process.GaussianProcessRegressor.log_marginal_likelihood(eval_gradient=True)"
                         " with ConstantKernel*RBF(ARD)+WhiteKernel", lambda t: float(gpr.log_marginal_likelihood(t)),
                         th, lambda t: np.array(gpr.log_marginal_likelihood(t, eval_gradient=True)[1]),
                         {"grad": "right"}, "analytic gradient 1/2 tr((aa' - K^-1) dK/dtheta) in log-hyperparameters"))
    return out


# ----------------------------------------------------------------------------------------------------------- scipy

def _scipy_rosen(n, size, rng):
    from scipy.optimize import rosen, rosen_der, rosen_hess, rosen_hess_prod
    src = "scipy.optimize.rosen/rosen_der" + ("/rosen_hess/rosen_hess_prod" if size == "small" else "/rosen_hess_prod")

    def missing(x):  # forgot the (1 - x_i)^2 term's derivative
        g = rosen_der(x)
        g[:-1] -= -2 * (1 - x[:-1])
        return g
    out = []
    for label, x in [("random", rng.uniform(-1.5, 1.5, n)), ("opt", np.ones(n))]:
        expected = {"grad": "right", "hessvec": "right"}
        kw = {"hessvec": lambda x, v: rosen_hess_prod(x, v)}
        if size == "small":
            kw["hess"] = rosen_hess
            expected["hess"] = "right"
        out.append(_case(f"scipy.rosen@{label}.n={n}", "scipy", src, lambda x: _scalar(rosen(x)), x, rosen_der,
                         expected, "hand-written derivatives of the Rosenbrock function", size=size,
                         missing_term=missing, **kw))
    return out


def _scipy_special_cases(n, size, rng):
    """fun = sum f(x_i): gradient f'(x_i) and diagonal Hessian f''(x_i) from scipy.special's own derivative functions."""
    from scipy import special as sp
    specs = [
        ("jv.nu=2.5", lambda x: sp.jv(2.5, x), lambda x: sp.jvp(2.5, x), lambda x: sp.jvp(2.5, x, 2),
         "scipy.special.jv / jvp(v, x, n=1, 2)", (0.5, 20.0)),
        ("jv.nu=0", lambda x: sp.jv(0, x), lambda x: sp.jvp(0, x), lambda x: sp.jvp(0, x, 2),
         "scipy.special.jv / jvp", (0.5, 20.0)),
        ("yv.nu=1", lambda x: sp.yv(1, x), lambda x: sp.yvp(1, x), lambda x: sp.yvp(1, x, 2),
         "scipy.special.yv / yvp", (0.5, 20.0)),
        ("iv.nu=1.5", lambda x: sp.iv(1.5, x), lambda x: sp.ivp(1.5, x), lambda x: sp.ivp(1.5, x, 2),
         "scipy.special.iv / ivp", (0.1, 5.0)),
        ("kv.nu=0.5", lambda x: sp.kv(0.5, x), lambda x: sp.kvp(0.5, x), lambda x: sp.kvp(0.5, x, 2),
         "scipy.special.kv / kvp", (0.2, 5.0)),
        ("spherical_jn.n=3", lambda x: sp.spherical_jn(3, x), lambda x: sp.spherical_jn(3, x, derivative=True), None,
         "scipy.special.spherical_jn(n, x, derivative=True)", (0.5, 15.0)),
        ("spherical_yn.n=2", lambda x: sp.spherical_yn(2, x), lambda x: sp.spherical_yn(2, x, derivative=True), None,
         "scipy.special.spherical_yn(n, x, derivative=True)", (0.5, 15.0)),
        ("gammaln", sp.gammaln, sp.digamma, lambda x: sp.polygamma(1, x),
         "scipy.special.gammaln / digamma / polygamma(1)", (0.1, 30.0)),
        ("digamma", sp.digamma, lambda x: sp.polygamma(1, x), lambda x: sp.polygamma(2, x),
         "scipy.special.digamma / polygamma(1) / polygamma(2)", (0.1, 30.0)),
        ("polygamma.2", lambda x: sp.polygamma(2, x), lambda x: sp.polygamma(3, x), lambda x: sp.polygamma(4, x),
         "scipy.special.polygamma(2) / polygamma(3) / polygamma(4)", (0.2, 10.0)),
        ("ellipk", sp.ellipk, lambda m: (sp.ellipe(m) - (1 - m) * sp.ellipk(m)) / (2 * m * (1 - m)), None,
         "scipy.special.ellipk; derivative via the DLMF 19.4.1 identity in ellipe/ellipk (identity, not a claim)",
         (0.05, 0.95)),
        ("erf", sp.erf, lambda x: 2 / np.sqrt(np.pi) * np.exp(-x * x), lambda x: -4 * x / np.sqrt(np.pi) * np.exp(-x * x),
         "scipy.special.erf; derivative 2/sqrt(pi) exp(-x^2) (textbook identity, not a library claim)", (-3.0, 3.0)),
        ("expit", sp.expit, lambda x: sp.expit(x) * sp.expit(-x), None,
         "scipy.special.expit; derivative expit(x) expit(-x) (identity)", (-8.0, 8.0)),
        ("log_expit", sp.log_expit, lambda x: sp.expit(-x), lambda x: -sp.expit(x) * sp.expit(-x),
         "scipy.special.log_expit; derivative expit(-x) (identity)", (-30.0, 30.0)),
    ]
    out = []
    for name, f, d1, d2, src, (lo, hi) in specs:
        x = rng.uniform(lo, hi, n)
        kw, expected = {}, {"grad": "right"}
        if d2 is not None:
            if size == "small":
                kw["hess"] = (lambda d2: lambda x: np.diag(d2(x)))(d2)
                expected["hess"] = "right"
            kw["hessvec"] = (lambda d2: lambda x, v: d2(x) * v)(d2)
            expected["hessvec"] = "right"
        out.append(_case(f"scipy.special.sum_{name}.n={n}", "scipy", src,
                         (lambda f: lambda x: _scalar(np.sum(f(x))))(f), x, d1, expected,
                         "the derivative of a sum of f(x_i) is f'(x_i); f' from the library (or the identity named)",
                         size=size, **kw))
    return out


# -------------------------------------------------------------------------------------------------------- autograd

def _autograd_cases(n, size, rng):
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import gammaln, logsumexp

    A = rng.standard_normal((n, n)) / np.sqrt(n) if size == "small" else None
    w = rng.standard_normal(n)
    fns = {
        "rosenbrock": (lambda x: anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2),
                       lambda x: anp.sum((1 - x[:-1]) ** 2)),
        "logsumexp_plus_quartic": (lambda x: logsumexp(x * w) + 0.25 * anp.sum(x ** 4), lambda x: 0.25 * anp.sum(x ** 4)),
        "tanh_sin": (lambda x: anp.sum(anp.tanh(x) * anp.sin(2 * x)) + anp.dot(x, x) / 3, lambda x: anp.dot(x, x) / 3),
        "softplus_gammaln": (lambda x: anp.sum(anp.logaddexp(0, x * w)) + anp.sum(gammaln(1.5 + x ** 2)),
                             lambda x: anp.sum(gammaln(1.5 + x ** 2))),
    }
    if A is not None:
        fns["quad_form_exp"] = (lambda x: anp.dot(x, anp.dot(A, x)) + anp.exp(anp.sum(anp.sin(x)) / n),
                                lambda x: anp.exp(anp.sum(anp.sin(x)) / n))
    out = []
    for name, (f, term) in fns.items():
        g = autograd.grad(f)
        hvp = autograd.hessian_vector_product(f)
        g_term = autograd.grad(term)
        kw = {"hessvec": (lambda hvp: lambda x, v: np.asarray(hvp(np.asarray(x, float), np.asarray(v, float))))(hvp)}
        expected = {"grad": "right", "hessvec": "right"}
        if size == "small":
            kw["hess"] = (lambda h: lambda x: np.asarray(h(np.asarray(x, float))))(autograd.hessian(f))
            expected["hess"] = "right"
        x = rng.uniform(-1.2, 1.2, n)
        out.append(_case(f"autograd.{name}.n={n}", "autograd",
                         "autograd.grad / autograd.hessian_vector_product" + (" / autograd.hessian" if size == "small"
                                                                              else ""),
                         (lambda f: lambda x: _scalar(f(np.asarray(x))))(f), x,
                         (lambda g: lambda x: np.asarray(g(np.asarray(x))))(g), expected,
                         "reverse-mode autodiff of the function itself", size=size,
                         missing_term=(lambda g, gt: lambda x: np.asarray(g(np.asarray(x))) - gt(np.asarray(x)))(g, g_term),
                         **kw))
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
        rng = np.random.default_rng(2026)
        out += _statsmodels_cases()
        out += _sk_linear_loss_cases(60, 5, "small", dense=True, tag="")
        out += _sk_other_cases()
        for n in (2, 7, 200):
            out += _scipy_rosen(n, "small", rng)
        out += _scipy_special_cases(6, "small", rng)
        out += _autograd_cases(5, "small", rng)
        out += _autograd_cases(200, "small", rng)[:1]
    if "large" in sizes:
        rng = np.random.default_rng(4052)
        for n in LARGE_N:
            out += _scipy_rosen(n, "large", rng)
            out += _scipy_special_cases(n, "large", rng)[:3]
            out += _sk_linear_loss_cases(50, n, "large", dense=False, tag=f".wide.n={n}",
                                         losses=("HalfBinomialLoss", "HalfPoissonLoss"))
            out += _statsmodels_large(n)
            out += [c for c in _autograd_cases(n, "large", rng) if "rosenbrock" in c["name"] or "tanh" in c["name"]]
    return out


def verify_kwargs(case, claims=("grad", "hessvec", "hess")):
    """Keyword arguments for ``checks.verify(case["fun"], case["x"], **kw)``: grad, and hvp from hessvec or hess."""
    kw = {"name": case["name"]}
    if "grad" in claims and case.get("grad") is not None:
        kw["grad"] = case["grad"]
    if "hessvec" in claims and case.get("hessvec") is not None:
        kw["hvp"] = case["hessvec"]
    elif "hess" in claims and case.get("hess") is not None:
        kw["hvp"] = (lambda h: lambda x, v: np.asarray(h(x)) @ v)(case["hess"])
    return kw


# --------------------------------------------------------------------------------------------------- planted bugs

KINDS = ("rel1e-2", "rel1e-4", "rel1e-6", "factor2", "half", "sign", "sign_entry", "asym", "asym_T",
         "missing_term", "neighbour")


def _entry_error(fn, rel, index):
    """One entry of a vector claim off by a relative amount."""
    def wrong(*args):
        value = np.array(fn(*args), dtype=float)
        value.flat[index] *= 1 + rel
        return value
    return wrong


def planted(case, kind, rng, claim=None):
    """A copy of ``case`` with a realistic mistake of ``kind`` (one of KINDS) in one claim; its expectation "wrong".

    claim: which claim to spoil ("grad", "hess", "hessvec"); default grad, or the Hessian claim for "asym"/"asym_T".
    Returns None when the kind does not apply (no missing term known, or no Hessian claim for "asym").
    The entry spoiled is chosen once, at case["x"], as the largest in magnitude (ties broken by rng).
    new["detectable"] says whether the mistake, at x, exceeds 100 times the claim's own float rounding (measured by
    evaluating the true claim at 3 copies of x moved in their last bits) in some entry: a relative mistake in a
    gradient that is ~0 (at an MLE) can be smaller than that, and then no checker can be asked to see it.
    A plant that changes nothing at x (twice a gradient that is exactly 0; a neighbour's Hessian of a quadratic)
    keeps the case's expectation and is marked new["noop"] = True.
    """
    new = _planted(case, kind, rng, claim)
    if new is not None:
        claim = new["planted"][1]
        new["detectable"], changed = _detectable(case, new, claim)
        if not changed:  # e.g. twice a gradient that is exactly 0, a neighbour's Hessian of a quadratic: no mistake
            new["expected"][claim] = case["expected"][claim]
            new["noop"] = True
    return new


def _detectable(case, new, claim):
    x = case["x"]
    n = x.size
    probe = np.random.default_rng(7).standard_normal(n)
    entry = new.get("planted_entry")
    if claim == "hessvec" and isinstance(entry, tuple):
        probe = probe + 10 * np.eye(1, n, entry[1]).ravel()

    def value(fn, at):
        return np.asarray(fn(at, probe) if claim == "hessvec" else fn(at), dtype=float)
    true, bad = value(case[claim], x), value(new[claim], x)
    jitter = np.random.default_rng(11)
    noise = np.zeros_like(true)
    for _ in range(3):
        moved = x * (1 + jitter.uniform(-2, 2, n) * np.finfo(float).eps)
        noise = np.maximum(noise, np.abs(value(case[claim], moved) - true))
    eps = np.finfo(float).eps
    # a gradient entry is rounded at least at eps |f| / |x|: the scale of the terms it sums, even where it is ~0
    floor = eps * abs(complex(case["fun"](x))) / (1 + np.max(np.abs(x))) if claim == "grad" else 0.0
    margin = 100 * (noise + eps * np.abs(true) + floor)
    return bool(np.any(np.abs(bad - true) > margin)), bool(np.any(bad != true))


def _planted(case, kind, rng, claim=None):
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {KINDS}")
    hess_claims = [c for c in ("hess", "hessvec") if case.get(c) is not None]
    if claim is None:
        claim = hess_claims[0] if kind in ("asym", "asym_T") and hess_claims else "grad"
    if case.get(claim) is None:
        return None
    new = copy.copy(case)
    new["expected"] = dict(case["expected"])
    new["expected"][claim] = "wrong"
    new["name"] = f"{case['name']}+planted:{kind}:{claim}"
    new["planted"] = (kind, claim)
    x0 = case["x"]
    n = x0.size
    fn = case[claim]

    if kind in ("asym", "asym_T"):
        if claim == "grad" or n < 2:
            return None
        # a one-sided off-diagonal error H[i, j] (1 + 1e-2) with H[j, i] untouched, or its transpose; (i, j) the
        # largest off-diagonal entry among the first 50 columns (none: a diagonal Hessian, the kind does not apply)
        cols = min(n, 50)
        H0 = np.asarray(case["hess"](x0))[:, :cols] if case.get("hess") is not None else \
            np.column_stack([case["hessvec"](x0, np.eye(1, n, k).ravel()) for k in range(cols)])
        off = np.abs(H0) * (1 - np.eye(n, cols))
        if off.max() == 0:
            return None
        top = np.argwhere(off == off.max())
        i, j = top[rng.integers(len(top))]
        i, j = (j, i) if kind == "asym_T" else (i, j)

        def h_ij(x):
            return np.asarray(case["hess"](x))[i, j] if case.get("hess") is not None else \
                np.asarray(case["hessvec"](x, np.eye(1, n, j).ravel()))[i]
        if claim == "hess":
            def wrong(x):
                H = np.array(case["hess"](x), dtype=float)
                H[i, j] *= 1 + 1e-2
                return H
        else:
            def wrong(x, v):
                out = np.array(case["hessvec"](x, v), dtype=float)
                out[i] += 1e-2 * h_ij(x) * v[j]
                return out
        new[claim] = wrong
        new["planted_entry"] = (int(i), int(j))
        return new

    if claim == "grad":
        ref = np.asarray(fn(x0), dtype=float)
    elif claim == "hess":
        ref = np.asarray(fn(x0), dtype=float)
    else:
        ref = None
    if kind.startswith("rel") or kind == "sign_entry":
        rel = -2.0 if kind == "sign_entry" else float(kind[3:])
        if claim == "hessvec":  # H[i, j] (1 + rel) for the largest diagonal entry, as a product
            diag = np.array([case["hessvec"](x0, np.eye(1, n, k).ravel())[k] for k in range(min(n, 50))])
            i = int(np.argmax(np.abs(diag)))

            def wrong(x, v):
                out = np.array(case["hessvec"](x, v), dtype=float)
                out[i] += rel * case["hessvec"](x, np.eye(1, n, i).ravel())[i] * v[i]
                return out
            new[claim] = wrong
            new["planted_entry"] = (i, i)
            return new
        flat = np.abs(ref).ravel()
        top = np.flatnonzero(flat == flat.max())
        index = int(rng.choice(top))
        new[claim] = _entry_error(fn, rel, index)
        new["planted_entry"] = index
        return new
    if kind in ("factor2", "half", "sign"):
        factor = {"factor2": 2.0, "half": 0.5, "sign": -1.0}[kind]
        new[claim] = lambda *args: factor * np.asarray(fn(*args), dtype=float)
        return new
    if kind == "missing_term":
        if claim != "grad" or case.get("missing_term") is None:
            return None
        new["grad"] = case["missing_term"]
        return new
    if kind == "neighbour":  # the claim evaluated at a stale/neighbouring point x + d, |d_i| ~ 1e-4 (|x_i| + 1)
        def shifted(x):
            d = 1e-4 * (np.abs(x) + 1) * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
            return np.asarray(x, dtype=float) + d
        if claim == "hessvec":
            new[claim] = lambda x, v: fn(shifted(x), v)
        else:
            new[claim] = lambda x: fn(shifted(x))
        return new
    return None
