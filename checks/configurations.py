"""The nets the lab builds for a candidate of the course API, chosen so that together they cover its
input space: every activation class (LeakyReLU with an alpha that is not a common default), layers with
and without bias, square and non-square layers, depths 1 to 4 with distinct widths, and batches of one,
two and more objects than the widest layer.  A bug that shows only in one corner (a squeezed batch of
one, a bias derivative returned by a layer without bias, W used for W^T in a square layer, gradient
blocks out of order beyond two layers) shows in the configuration that covers that corner.

Each configuration says what it covers, so the records and the report can list it.  The covering set
is fixed (no draw): every run of the lab examines every candidate the same way.
"""

import dataclasses

LEAKY_ALPHA = 0.3  # neither 0.01 nor 0.1: a LeakyReLU that ignores its alpha shows
LAYER_BATCH = 5  # the layer checks' batch, at most: a per-layer 1/N is a factor 1/5 there
NAMES = {"t": "tanh", "s": "sigmoid", "l": "linear", "r": "ReLU", "k": f"LeakyReLU (alpha {LEAKY_ALPHA})"}


@dataclasses.dataclass(frozen=True)
class Configuration:
    widths: tuple
    letters: str  # one activation letter per layer (ae.activations.LETTERS)
    bias: bool = True
    batch: int = 7  # objects in the model's data
    verify: bool = False  # checks.verify judges the model's loss, gradient and Hv
    optimizers: bool = False  # the optimizers run a few epochs on this net

    @property
    def layer_batch(self):
        return min(self.batch, LAYER_BATCH)

    @property
    def label(self):
        extra = ([] if self.bias else ["no bias"]) + ([] if self.batch == 7 else [f"batch {self.batch}"])
        return "-".join(map(str, self.widths)) + " " + self.letters + "".join(f", {e}" for e in extra)

    def covers(self):
        """What part of the course API this configuration exercises, in words."""
        shapes = list(zip(self.widths, self.widths[1:]))
        square = [k for k, (a, b) in enumerate(shapes) if a == b]
        said = [f"depth {len(shapes)}", ", ".join(sorted({NAMES[g] for g in self.letters})),
                "bias" if self.bias else "use_bias=False",
                f"square layer{'s' if len(square) > 1 else ''} {', '.join(map(str, square))}" if square
                else "non-square layers",
                f"batch {self.batch}" + (" (more objects than the widest layer)" if self.batch > max(self.widths)
                                         else " (one object)" if self.batch == 1 else ""),
                f"layer passes on {self.layer_batch} column{'s' if self.layer_batch > 1 else ''}"]
        return said + (["checks.verify"] if self.verify else []) + (["optimizers"] if self.optimizers else [])


# the two first nets are judged whole (checks.verify; the optimizers on the smaller); the others cover
# the corners of the API at the cost of the lab's own comparisons alone
COVERING = (
    Configuration((6, 4, 2, 4, 6), "tlts", verify=True),
    Configuration((5, 3, 5), "st", verify=True, optimizers=True),
    Configuration((4, 4), "k", bias=False, batch=1),
    Configuration((3, 5, 5, 3), "rkt", batch=2),
)


def for_candidate(available):
    """The covering set for a candidate with the activation letters ``available``: a letter it lacks is
    stood in for by linear (named in the label)."""
    return [dataclasses.replace(c, letters="".join(g if g in available else "l" for g in c.letters))
            for c in COVERING]
