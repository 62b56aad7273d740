"""checks.configurations: the nets python -m checks --engine builds cover the course API's input space."""

from checks import configurations
from checks.configurations import COVERING, Configuration, for_candidate


def test_the_covering_set_reaches_every_corner_of_the_api():
    shapes = [list(zip(c.widths, c.widths[1:])) for c in COVERING]
    assert {len(s) for s in shapes} >= {1, 2, 3, 4}  # depths 1 to 4
    assert any(len(set(c.widths)) == len(c.widths) // 2 + 1 > 2 for c in COVERING)  # distinct widths to the code
    assert any(a == b for s in shapes for a, b in s) and any(a != b for s in shapes for a, b in s)
    assert {c.bias for c in COVERING} == {True, False}
    assert {1, 2} <= {c.batch for c in COVERING}
    assert any(c.batch > max(c.widths) for c in COVERING)
    assert set("".join(c.letters for c in COVERING)) == set(configurations.NAMES)  # every activation
    assert all(c.widths[0] == c.widths[-1] for c in COVERING)  # autoencoders
    assert configurations.LEAKY_ALPHA not in (0.01, 0.1)  # not a default a class might fall back to


def test_a_missing_activation_is_stood_in_for_by_linear_and_repeats_are_dropped():
    chosen = for_candidate({"t", "s", "l"})
    assert [c.label for c in chosen] == ["6-4-2-4-6 tlts", "5-3-5 st", "4-4 l, no bias, batch 1",
                                         "3-5-5-3 llt, batch 2"]
    assert [c.label for c in for_candidate({"l"})] == ["6-4-2-4-6 llll", "5-3-5 ll", "4-4 l, no bias, batch 1",
                                                       "3-5-5-3 lll, batch 2"]
    assert for_candidate(set(configurations.NAMES)) == list(COVERING)


def test_what_a_configuration_covers_is_said_in_words():
    assert Configuration((3, 5, 5, 3), "rkt", batch=2).covers() == [
        "depth 3", "LeakyReLU (alpha 0.3), ReLU, tanh", "bias", "square layer 1", "batch 2",
        "layer passes on 2 columns"]
    assert Configuration((5, 3, 5), "st", verify=True, optimizers=True).covers()[-2:] == ["checks.verify",
                                                                                         "optimizers"]
    assert Configuration((6, 4, 2, 4, 6), "tlts").layer_batch == configurations.LAYER_BATCH
    assert "more objects than the widest layer" in Configuration((6, 4, 2, 4, 6), "tlts").covers()[4]
