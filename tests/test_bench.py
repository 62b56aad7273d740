"""The benchmark counts the right products and times the same function in every framework."""

import numpy as np
import pytest

import ae
from studies import bench


def test_benchmark_flop_count_matches_the_design_figure():
    assert bench.flops(bench.gemm_shapes("forward", 1000)) == 2 * 467_456 * 1000
    # loss + gradient: forward, dW of every layer, dZ of all but the first
    assert bench.flops(bench.gemm_shapes("loss+grad", 1000)) == 3 * 2 * 467_456 * 1000 - 2 * 784 * 256 * 1000


def flat(tree):
    """Arrays of a nested list/tuple (torch tensors, JAX arrays) as one numpy vector."""
    if isinstance(tree, (list, tuple)):
        return np.concatenate([flat(t) for t in tree])
    return np.asarray(tree).ravel()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.func's own use of torch.jit.script
@pytest.mark.parametrize("framework", bench.FRAMEWORKS)
def test_the_frameworks_compute_what_the_engine_computes(framework):
    """A ratio means something only if both sides compute the same quantity."""
    pytest.importorskip(framework)
    bench.load_framework(framework)
    params, X, p = bench.reference_problem(np.float64, 5)
    model = ae.build(bench.WIDTHS, bench.LETTERS)
    model.set_weights(flat(params))
    _, grad = model.compute_loss(X)
    ours = {"loss+grad": grad, "Hv scratch": model.compute_hessvec(flat(p)),
            "GNv": model.compute_gaussnewtonvec(flat(p))}
    theirs = bench.FRAMEWORK_TASKS[framework](np.float64, 5)
    for quantity, fn in theirs.items():
        got = fn()
        got = got[1] if framework == "jax" and quantity == "loss+grad" else got  # (value, grad)
        assert np.allclose(flat(got), ours[quantity], rtol=1e-9, atol=1e-12 * np.abs(ours[quantity]).max()), quantity


@pytest.mark.slow
def test_a_tiny_run_writes_every_row_and_the_memory_accounting(tmp_path):
    record = bench.run(rounds=1, frameworks=(), batches=(20,))
    quantities = [(r["dtype"], r["quantity"]) for r in record["rows"]]
    for dtype in ("float64", "float32"):
        assert [q for d, q in quantities if d == dtype] == ["loss+grad", "Hv scratch", "Hv", "GNv", "Adam epoch (4000)"]
    for row in record["rows"]:
        assert row["seconds"] > 0
        if "gemm_bound_seconds" in row:  # the bound times the quantity's own products, which take time
            assert row["gemm_bound_seconds"] > 0 and row["x_gemm_bound"] > 0
    m = record["memory"]
    # the forward state of the 784-256-128-2-128-256-784 net at B = 1000: u of every layer,
    # z and g' of the four tanh layers (the linear ones keep z = u and no g')
    assert m["forward_state_bytes"] == 8 * 1000 * (784 + 256 + 128 + 2 + 128 + 256 + 2 * (256 + 128 + 128 + 256))
    # measured, not derived: a loss + gradient call allocates at least the forward state it keeps
    # and the gradient it returns (tracemalloc sees numpy's buffers)
    assert m["peak_loss_grad_bytes"] >= m["forward_state_bytes"] + m["gradient_bytes"]
    assert m["gradient_bytes"] == 8 * ae.build(bench.WIDTHS, bench.LETTERS).params_number
    assert "peak memory" in bench.table(record)
