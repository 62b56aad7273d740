"""checks.verify on published derivative code (tests/published, built apart from the lab: statsmodels,
scikit-learn, scipy and autograd in published.py; lifelines, scikit-survival, glum and GPy in more.py; their
own gradients and Hessians at random points and optima): every
published claim gets the verdict the corpus expects (no false alarm on a right one, a fail on the two
documented wrong ones), and a claim with its largest entry off by a relative 1e-6 fails wherever verify's
own detection power says an error that size is caught (no silent pass: where fun is real-only the
differences may not reach 1e-6, and the table then says so).
Cases up to n = 10 here (fast); every size, 2,000 and 20,000 included, in tools/verify_published.py."""

import importlib
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from checks import verify

sys.path.insert(0, str(Path(__file__).parent / "published"))
import published  # noqa: E402  (planted and verify_kwargs serve both modules)

SMALL = 10  # the largest n run here
# each corpus module, the libraries it needs (the extras test and published) and those its claims come from
CORPUS = {"published": (("statsmodels", "sklearn", "autograd"), {"statsmodels", "scikit-learn", "scipy", "autograd"}),
          "more": (("lifelines", "sksurv", "glum", "GPy"), {"lifelines", "scikit-survival", "glum", "GPy"})}


@pytest.fixture(scope="module", params=sorted(CORPUS))
def module(request):
    for library in CORPUS[request.param][0]:
        pytest.importorskip(library, reason=f"cannot run: {library} not installed (pip install -e .[published])")
    return request.param


@pytest.fixture(scope="module")
def cases(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [c for c in importlib.import_module(module).cases(("small",)) if c["x"].size <= SMALL]


def verdicts(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = verify(case["fun"], case["x"], **published.verify_kwargs(case))
    got = {}
    for claim, quantity in (("grad", "gradient"), ("hessvec" if "hessvec" in case else "hess", "Hv")):
        if case.get(claim) is not None:
            got[claim] = (case["expected"][claim], result.verdicts.get(quantity, "absent"))
    return got, result


@pytest.fixture(scope="module")
def runs(cases):
    return {case["name"]: verdicts(case) for case in cases}


@pytest.mark.slow
def test_every_published_claim_gets_the_expected_verdict(module, cases, runs):
    assert {c["library"] for c in cases} == CORPUS[module][1]
    differ = []
    for case in cases:
        got, result = runs[case["name"]]
        for claim, (expected, verdict) in got.items():
            if {"right": "pass", "wrong": "fail"}[expected] != verdict:
                differ.append((case["name"], claim, expected, verdict, result.table()))
    assert not differ, "\n\n".join(" ".join(map(str, d[:4])) + "\n" + d[4] for d in differ)


def test_a_largest_entry_off_by_1e_6_fails_where_the_stated_power_reaches_it(cases, runs):
    rng = np.random.default_rng(1)
    missed = []
    for case in cases[::3]:
        wrong = published.planted(case, "rel1e-6", rng)
        if wrong is None or wrong.get("noop") or not wrong.get("detectable", True):
            continue
        got, result = verdicts(wrong)
        for claim, (expected, verdict) in got.items():
            quantity = "gradient" if claim == "grad" else "Hv"
            # the power verify states for the published claim (measured around it, not around the plant)
            stated = runs[case["name"]][1].detection_power
            power = stated.get(quantity, {}).get("entries", {}).get("largest", {})
            promised = power.get("smallest_caught") is not None and power["smallest_caught"] <= 1e-6
            if expected == "wrong" and verdict != "fail" and promised:
                missed.append((wrong["name"], claim, verdict, result.table()))
    assert not missed, "\n\n".join(" ".join(map(str, m[:3])) + "\n" + m[3] for m in missed)
