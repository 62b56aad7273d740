"""The lab's judges to the engine's standard: every target pinned to its stated value (DESIGN's table),
met by the correct engine with a margin, and every judge fed a known-wrong input says fail."""

import numpy as np
import pytest
from test_verify import Problem

from checks import certified, suite, verify
from checks.records import group_records
from checks.verify import ROUNDOFF_FACTOR
from checks.verify import TARGETS as VERIFY_JUDGES

# DESIGN's accuracy targets (float64 unless said); a change here is a change of a promise
DESIGN_TARGETS = {
    "complex step": 1e-14, "central best": {"gradient": 1e-9, "Hv": 1e-8, "GNv": 1e-8},
    "forward at sqrt(eps)": 1e-6, "slope": 0.1, "mp-central best": 1e-30, "mp-complex": 1e-45,
    "taylor slope": 0.05, "dense": 1e-14, "dense central": 1e-8, "symmetry": 1e-14, "adjoint": 1e-14,
    "psd": 1e-13, "float32 vs mpmath": 1e-5, "detection": 1e-10,
}
CERTIFIED_TARGETS = {"evaluation": 1e-14, "formula": 1e-30,
                     "total": {"float64": 1e-14, "float32": 1e-5, "mpmath": 1e-45}}
VERIFY_TARGETS = {"complex step": 1.0, "50 digits": 1.0, "central difference": 1e-8, "Richardson": 1e-9,
                  "50 digits, p.Hp": 1e-14, "symmetry": 1e-12, "adjoint": 1e-12, "p.Gp = |Jp|^2": 1e-12,
                  "Taylor": 0.1, "PSD": 1e-13}
MARGIN = 3  # the correct engine meets every target at least this many times over (the smallest margin
# measured on the quick lab is 3.7, the order-3 Taylor slope; most are 20 to 10^5)


def test_every_target_is_the_stated_one():
    assert suite.TARGETS == DESIGN_TARGETS
    assert certified.TARGETS == CERTIFIED_TARGETS
    assert VERIFY_JUDGES == VERIFY_TARGETS
    assert ROUNDOFF_FACTOR == 8


@pytest.fixture(scope="module")
def quick_records():
    records, _ = suite.run_suite(quick=True, seed=0)
    return records


@pytest.mark.slow
def test_the_correct_engine_meets_every_target_with_a_margin(quick_records):
    judged = [r for r in quick_records if r["verdict"] in ("pass", "fail")]
    assert judged and all(r["verdict"] == "pass" for r in judged)
    for row in group_records(judged):
        assert row["worst"] <= row["target"] / MARGIN, row


def test_every_record_is_judged_against_a_stated_target(quick_records):
    stated = set()
    for value in list(DESIGN_TARGETS.values()) + list(CERTIFIED_TARGETS.values()):
        stated |= set(value.values()) if isinstance(value, dict) else {value}
    thresholds = {r["threshold"] for r in quick_records if r["verdict"] in ("pass", "fail")}
    assert thresholds <= stated, thresholds - stated


def test_the_suite_s_sweep_judges_fail_a_wrong_curve():
    h = np.logspace(-1, -300, 60)
    wrong = {"complex": {"h": h.tolist(), "error": [1e-9] * len(h)},
             "central": {"h": h.tolist(), "error": (1e-6 + 0 * h).tolist()}}
    records = suite.sweep_records(wrong, "gradient", {"net": "x", "dtype": "float64"})
    verdicts = {r["check"]: r["verdict"] for r in records}
    assert verdicts["complex step"] == "fail" and verdicts["central best"] == "fail"


class Wrong(Problem):
    """Known-wrong claims for verify's directional judges, one judge each."""

    def antisymmetric_hvp(self, x, p):
        K = np.triu(np.ones((self.x.size, self.x.size)), 1)
        return self.hvp(x, p) + 1e-3 * (K - K.T) @ p  # p.(Kp) = 0: only symmetry and entries see it

    def negative_gnvp(self, x, p):
        return -self.gnvp(x, p)

    def doubled_gnvp(self, x, p):
        return 2 * self.gnvp(x, p)


@pytest.mark.parametrize("claims, check, quantity", [
    (lambda w: dict(grad=w.grad, hvp=w.antisymmetric_hvp), "symmetry", "Hv"),
    (lambda w: dict(residual=w.residual, gnvp=w.negative_gnvp), "PSD", "GNv"),
    (lambda w: dict(residual=w.residual, gnvp=w.doubled_gnvp), "p.Gp = |Jp|^2", "GNv"),
    (lambda w: dict(grad=lambda x: 1.001 * w.grad(x)), "Taylor", "gradient"),
    (lambda w: dict(grad=lambda x: 1.001 * w.grad(x)), "central difference", "gradient"),
    (lambda w: dict(grad=lambda x: 1.001 * w.grad(x)), "Richardson", "gradient"),
    (lambda w: dict(grad=w.grad, hvp=lambda x, p: 1.001 * w.hvp(x, p)), "50 digits, p.Hp", "Hv"),
    (lambda w: dict(grad=w.grad, hvp=lambda x, p: 1.001 * w.hvp(x, p)), "Taylor", "Hv"),
])
def test_each_directional_judge_of_verify_fails_a_known_wrong_claim(claims, check, quantity):
    wrong = Wrong(0)
    result = verify(wrong.fun, wrong.x, **claims(wrong))
    judged = [r["verdict"] for r in result.records if r["check"] == check and r["quantity"] == quantity]
    assert judged and "fail" in judged, result.table()


@pytest.mark.slow
@pytest.mark.bitexact
def test_the_lab_is_reproducible_bit_for_bit_from_its_seed(quick_records):
    # every random vector of the lab (weights, batches, directions, identity vectors) comes from the
    # seed: a second run gives the same records, clock fields aside; another seed does not
    def without_clocks(records):
        return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in records]

    messages = []
    again, curves = suite.run_suite(quick=True, seed=0, progress=messages.append)
    assert without_clocks(again) == without_clocks(quick_records)
    # what the person waiting is told, and the curves the figures are drawn from
    first = suite.describe(suite.build_case(suite.QUICK[0], 0)[0])
    assert messages[:2] == [f"{first}: sweeps", f"{first}: Taylor test"]
    assert messages[-1] == "G -> H as the residual vanishes" and all(isinstance(m, str) for m in messages)
    assert set(curves["taylor"]) == {"float64", "mpmath"} and all(
        len(curves["taylor"][d]["slopes"]) == 3 for d in ("float64", "mpmath"))
    assert set(curves["sweeps"]) == set(curves["detection"]) == {"gradient", "Hv", "GNv"}
    sizes = {q: curves["detection"][q]["ae-lab"]["largest entry"]["relative_size"] for q in curves["detection"]}
    assert len(set(sizes.values())) == 3, sizes  # each quantity's own detection power, not one thrice
    other = suite.identity_records(*suite.build_case(suite.QUICK[0], 0)[:3], {}, seed=1)
    assert [r["measured"] for r in other] != [
        r["measured"] for r in suite.identity_records(*suite.build_case(suite.QUICK[0], 0)[:3], {}, seed=0)]


PRECISION = {"float64": "eps 2.2e-16", "float32": "eps 1.2e-7", "mpmath": "50 digits"}


def test_every_record_says_what_it_measured_in_which_number_type(quick_records):
    for r in quick_records:
        if r["verdict"] in ("pass", "fail", "info") and "estimator" not in r:
            raise AssertionError(f"a record without its estimator: {r}")
        if r["check"].startswith("certified"):
            assert r["precision"].startswith("balls"), r  # the rest of its records: test_certified
            continue
        assert r["dtype"] in PRECISION and r.get("precision", "").startswith(PRECISION[r["dtype"]]), r
    ladder = [r for r in quick_records if r["check"].endswith(" sweep") and r["verdict"] == "info"]
    assert ladder and all(r["dtype"] == "float32" and r["quantity"] == "gradient" for r in ladder)
    mp_taylor = [r for r in quick_records if r["check"] == "taylor slope" and r["dtype"] == "mpmath"]
    assert len(mp_taylor) == 3
    # quick mode measures detection power on its first net only; every quantity, by check "detection power"
    first = suite.describe(suite.build_case(suite.QUICK[0], 0)[0])
    power = [r for r in quick_records if r["check"] == "detection power"]
    assert {r["net"] for r in power} == {first} and {r["quantity"] for r in power} == {"gradient", "Hv", "GNv"}
    identities = [r for r in quick_records if r["check"].startswith(("adjoint", "symmetry u."))]
    assert identities and all(r["estimator"] for r in identities)
    assert all(r["seed"] == 0 for r in quick_records if r["net"] == first)  # the seed that remakes it
    certified_records = [r for r in quick_records if r["check"].startswith("certified")]
    assert certified_records and all(r["net_seconds"] > 0 for r in certified_records)  # README's figure
    gap = {r["quantity"]: r for r in quick_records if r["check"] == "G -> H as residual -> 0"}
    assert set(gap) == {"slope of gap vs residual", "gap at zero residual"}
    assert gap["slope of gap vs residual"]["predicted"] == 1


def test_a_false_alarm_of_the_lab_s_own_check_is_a_failure_of_detection_power():
    result = {"ae-lab": {"largest": {"caught": [], "relative_size": 1.0, "smallest_caught": None,
                                     "false_alarm": True}}}
    [record] = suite.detection_records(result, "Hv", {"net": "x", "dtype": "float64"})
    assert (record["check"], record["quantity"], record["verdict"]) == ("detection power", "Hv", "fail")
    assert record["measured"] == float("inf") and record["note"] == "false alarm on the unmutated result"
    assert record["net"] == "x" and record["estimator"] == "ae-lab" and record["entry"] == "largest"


def test_float32_is_judged_against_50_digits_at_the_same_float32_weights():
    # the estimator's promise: same weights, so the measured error is float32 arithmetic alone, never
    # the rounding of the weights (which a float64 reference would add)
    import mpmath

    from ae import numeric
    from checks.estimators import relative_error

    model, inputs, w, p = suite.build_case(suite.QUICK[0], 0)
    found = {r["quantity"]: r["measured"] for r in suite.float32_records(model, inputs, w, p, {})}
    single, exact = {}, {}
    for out, convert in ((single, lambda a: a.astype(np.float32)),
                         (exact, lambda a: numeric.to_mp(a.astype(np.float32)))):
        with mpmath.workdps(50):
            model.set_weights(convert(w))
            out["loss"], out["gradient"] = model.compute_loss(convert(inputs))
            out["Hv"] = model.compute_hessvec(convert(p))
    with mpmath.workdps(50):
        for quantity in ("loss", "gradient", "Hv"):
            expected = relative_error(numeric.to_mp(np.asarray(single[quantity])), exact[quantity])
            assert found[quantity] == pytest.approx(expected, rel=1e-6), quantity


def lab_catalogue():
    """Every record the quick lab writes for its first net (certified and detection power aside): check,
    quantity, number type, estimator, target and, for the complex steps, the band of steps judged."""
    T = DESIGN_TARGETS
    rows = set()
    for q in ("gradient", "Hv", "GNv"):
        rows |= {("forward at sqrt(eps)", q, "float64", "forward", T["forward at sqrt(eps)"], None),
                 ("central best", q, "float64", "central", T["central best"][q], None),
                 ("complex step", q, "float64", "complex", T["complex step"], (1e-20, 1e-200)),
                 ("mp-central best", q, "mpmath", "mp-central", T["mp-central best"], None),
                 ("mp-complex step", q, "mpmath", "mp-complex", T["mp-complex"], (1e-30, 1e-200))}
        rows |= {(f"{name} slope", q, dtype, name, T["slope"], None) for name, dtype in (
            ("forward", "float64"), ("central", "float64"), ("complex", "float64"), ("mp-central", "mpmath"),
            ("mp-complex", "mpmath"))}
    rows |= {(f"{name} sweep", "gradient", "float32", name, None, None) for name in ("forward", "central", "complex")}
    rows |= {("taylor slope", f"order {k}", dtype, label, T["taylor slope"], None)
             for k, label in ((1, "F(w+hp)-F"), (2, "-h g.p"), (3, "-h^2/2 p.Hp")) for dtype in ("float64", "mpmath")}
    rows |= {("dense H", "H", "float64", "Hv products vs mpmath", T["dense"], None),
             ("dense H", "H", "float64", "complex step vs mpmath", T["dense"], None),
             ("dense H", "H", "float64", "central difference vs mpmath", T["dense central"], None),
             ("dense G", "G", "float64", "GN products vs J^T J/N (complex-step J)", T["dense"], None),
             ("dense G", "G", "float64", "GN products vs mpmath", T["dense"], None),
             ("symmetry (dense)", "H", "float64", "||A - A^T|| / ||A||", T["symmetry"], None),
             ("symmetry (dense)", "G", "float64", "||A - A^T|| / ||A||", T["symmetry"], None),
             ("G positive semi-definite", "G", "float64", "max(0, -lambda_min / lambda_max)", T["psd"], None),
             ("H eigenvalues", "H", "float64", "number of negative eigenvalues", None, None),
             ("adjoint u.(Jv) = (J^T u).v", "J", "float64", "R-forward vs backward", T["adjoint"], None),
             ("symmetry u.(Av) = v.(Au)", "H", "float64", "random u, v", T["symmetry"], None),
             ("symmetry u.(Av) = v.(Au)", "G", "float64", "random u, v", T["symmetry"], None)}
    rows |= {("float32 vs mpmath", q, "float32", "float32 engine vs 50-digit engine, same weights",
              T["float32 vs mpmath"], None) for q in ("loss", "gradient", "Hv", "GNv")}
    return rows


def test_the_lab_writes_its_catalogue_of_records_for_its_first_net(quick_records):
    first = suite.describe(suite.build_case(suite.QUICK[0], 0)[0])
    found = [(r["check"], r["quantity"], r["dtype"], r["estimator"], r.get("threshold"),
              tuple(r["steps"]) if r["check"].endswith("complex step") else None)
             for r in quick_records if r.get("net") == first
             and not r["check"].startswith("certified") and r["check"] != "detection power"]
    assert len(found) == len(set(found)) and set(found) == lab_catalogue()
    sweeps_ = [r for r in quick_records if r.get("net") == first and " sweep" in r["check"]]
    assert all(r["best_step"] > 0 for r in sweeps_)  # the precision ladder's best steps
    # a best-step verdict names the one step it was measured at, not the sweep's range
    at_one_step = [r for r in quick_records if r.get("net") == first
                   and (r["check"].endswith(" best") or r["check"] == "forward at sqrt(eps)")]
    assert at_one_step and all(len(r["steps"]) == 1 and r["steps"][0] > 0 for r in at_one_step)
    assert all(abs(np.log10(r["steps"][0] / np.sqrt(np.finfo(float).eps))) <= 1
               for r in at_one_step if r["check"] == "forward at sqrt(eps)")


def test_the_eigenvalue_ranges_are_those_of_the_dense_matrices():
    from checks import dense

    model, inputs, w, _ = suite.build_case(suite.QUICK[0], 0)
    found = {r["check"]: r for r in suite.dense_records(model, inputs, w, {})}
    Hs, Gs = dense.hessians(model, inputs, w, dps=suite.MP_DPS)
    eig_G = np.linalg.eigvalsh(Gs["GN products"])
    eig_H = np.linalg.eigvalsh((Hs["Hv products"] + Hs["Hv products"].T) / 2)
    assert found["G positive semi-definite"]["eigenvalue_range"] == pytest.approx([eig_G[0], eig_G[-1]])
    assert found["H eigenvalues"]["eigenvalue_range"] == pytest.approx([eig_H[0], eig_H[-1]])


def test_a_sweep_whose_every_step_is_nan_cannot_run_and_says_why():
    curve = {"complex": {"h": np.logspace(-1, -30, 30), "error": np.full(30, np.nan)}}
    [record] = suite.sweep_records(curve, "Hv", {"net": "x"})
    assert (record["check"], record["quantity"], record["verdict"]) == ("complex sweep", "Hv", "cannot run")
    assert record["reason"] == "every step straddles a ReLU kink or underflows"


def test_taylor_records_give_each_order_its_slope_or_say_why_not():
    result = {"slopes": [1.02, np.nan, 2.9], "windows": [slice(0, 4), slice(0, 4), slice(2, 6)],
              "h": np.logspace(0, -7, 8)}
    first, second, third = suite.taylor_records(result, {"net": "x"})
    assert (first["check"], first["quantity"], first["slope"], first["predicted"]) == (
        "taylor slope", "order 1", 1.02, 1)
    assert first["measured"] == pytest.approx(0.02) and first["steps"] == [1.0, 1e-3]
    assert (second["check"], second["quantity"], second["verdict"]) == ("taylor slope", "order 2", "cannot run")
    assert second["reason"].startswith("fewer than 4 steps above round-off and below the nearest kink")
    assert (third["slope"], third["predicted"], third["verdict"]) == (2.9, 3, "fail")  # 0.1 off: above 0.05


def test_a_sweep_without_a_truncation_regime_says_why_its_slope_cannot_be_measured():
    h = np.logspace(-1, -12, 12)
    curve = {"central": {"h": h, "error": np.full(12, 1e-17)}}  # every step already at round-off
    slope = [r for r in suite.sweep_records(curve, "gradient", {"net": "x"}) if r["check"] == "central slope"]
    assert [(r["verdict"], r["reason"]) for r in slope] == [(
        "cannot run", "fewer than 3 steps in the truncation regime (none at all when the quantity is a "
        "low-degree polynomial in w, or every larger step straddles a kink)")]


def test_the_50_digit_slope_is_fitted_above_100_times_10_to_the_minus_50():
    # three points on h^2, one at 5e-49 (below 100 x 10^-50: round-off's region at 50 digits), the best far below
    curve = {"mp-central": {"h": np.array([1e-3, 1e-4, 1e-5, 1e-20, 1e-30]),
                            "error": np.array([1e-6, 1e-8, 1e-10, 5e-49, 1e-70])}}
    [best, fitted] = suite.sweep_records(curve, "gradient", {"net": "x"})
    assert fitted["check"] == "mp-central slope" and fitted["slope"] == pytest.approx(2.0, abs=1e-9)


def test_full_mode_measures_detection_power_on_the_first_net_and_the_tied_ones_only(monkeypatch):
    # three small nets: the first, an untied one, a tied one (full mode sweeps every net)
    monkeypatch.setattr(suite, "FULL", [([3, 3], "l", False, False, 4), ([3, 3], "l", True, False, 4),
                                        ([3, 2, 3], "ll", False, True, 3)])
    records, _ = suite.run_suite(quick=False, seed=0)
    nets = list(dict.fromkeys(r["net"] for r in records))[:3]  # then the G -> H problem's own net
    measured = {r["net"] for r in records if r["check"] == "detection power"}
    assert nets[1].endswith("bias") and measured == {nets[0], nets[2]}, (nets, measured)
