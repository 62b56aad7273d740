"""The training loop and every run_* method, on small synthetic problems."""

import tracemalloc

import numpy as np
import pytest

import ae

METHODS = {
    "sgd": dict(step_size=0.1, minibatch_size=20),
    "momentum": dict(step_size=0.05, minibatch_size=20),
    "rmsprop": dict(step_size=0.003, minibatch_size=20),
    "adam": dict(step_size=0.003, minibatch_size=20),
    "hf": dict(),
}


def manifold_data(n=300, dim=10, seed=0):
    """Points near a curved 2-D manifold in dim dimensions (columns are examples)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(-1, 1, (2, n))
    return np.tanh(rng.standard_normal((dim, 2)) @ t) + 0.01 * rng.standard_normal((dim, n))


def full_objective(model, data, w, l2_coef):
    """F + l2/2 w.w on all of ``data`` in one compute_loss call (no chunks: independent of evaluate)."""
    model.set_weights(w)
    loss, grad = model.compute_loss(data)
    grad = grad + l2_coef * w
    return loss, loss + l2_coef / 2 * (w @ w), np.sqrt(grad @ grad)


def small_model(dim=10, seed=1, tied=False):
    layers = [ae.FCLayer((dim, 6), ae.TanhActivationFunction(), True),
              ae.FCLayer((6, 2), ae.LinearActivationFunction(), True),
              ae.FCLayer((2, 6), ae.TanhActivationFunction(), True),
              ae.FCLayer((6, dim), ae.LinearActivationFunction(), True)]
    model = ae.Autoencoder(layers, tied=tied)
    model.init_weights(seed)
    return model


def run(model, method, data, test=None, **kwargs):
    options = {**METHODS[method], **kwargs}
    return getattr(model, f"run_{method}")(data, num_epoch=options.pop("num_epoch", 8),
                                           test_inputs=test, **options)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_lowers_the_loss(method):
    data = manifold_data()
    history = run(small_model(), method, data[:, :250], data[:, 250:])
    assert len(history["train_loss"]) == len(history["test_loss"]) == 8
    assert history["train_loss"][-1] < 0.5 * history["initial"]["train_loss"]
    assert history["test_loss"][-1] < 0.5 * history["initial"]["test_loss"]
    assert all(np.isfinite(history[k]).all() for k in ("train_grad", "test_grad", "seconds"))


@pytest.mark.parametrize("method", METHODS)
def test_history_matches_the_trained_weights(method):
    data = manifold_data(100)
    model = small_model()
    history = run(model, method, data, num_epoch=3, l2_coef=1e-3)
    measured = full_objective(model, data, model.get_weights(), 1e-3)
    recorded = (history["train_loss"][-1], history["train_objective"][-1], history["train_grad"][-1])
    np.testing.assert_allclose(recorded, measured, rtol=1e-12)


@pytest.mark.bitexact
def test_full_batch_runs_are_deterministic():
    data = manifold_data(100)
    a = run(small_model(), "adam", data, minibatch_size=100, seed=1)
    b = run(small_model(), "adam", data, minibatch_size=100, seed=2)
    assert a["train_loss"] == b["train_loss"]  # no shuffling can matter


@pytest.mark.bitexact
@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_history_other_seed_differs(method):
    data = manifold_data(100)
    a, b, c = (run(small_model(), method, data, seed=s, num_epoch=3, **(
        {"minibatch_size": 50} if method == "hf" else {})) for s in (5, 5, 6))
    keys = ["train_loss", "train_grad", "train_objective"]
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert a["train_loss"] != c["train_loss"]


def test_divergence_is_detected_and_the_weights_stay_finite(capsys):
    data = manifold_data(100)
    model = small_model()
    with pytest.warns(RuntimeWarning, match="diverged at epoch 1"):
        history = model.run_sgd(data, step_size=1e6, num_epoch=5, minibatch_size=10, display=True)
    assert history["diverged"]["epoch"] == 1
    assert "objective" in history["diverged"]["reason"]
    assert np.isfinite(model.get_weights()).all()
    assert history["train_loss"] == []  # no epoch finished, and no NaN was recorded
    assert "diverged" in capsys.readouterr().err


@pytest.mark.parametrize("step_size", [3.0, 30.0, 1e6])
def test_the_guard_keeps_weights_whose_full_set_objective_is_inside_the_bound(step_size):
    data = manifold_data(200)
    model = small_model()
    with pytest.warns(RuntimeWarning, match="diverged"):
        history = model.run_sgd(data, step_size=step_size, num_epoch=20, minibatch_size=10, l2_coef=1e-5)
    diverged = history["diverged"]
    _, objective, _ = full_objective(model, data, model.get_weights(), 1e-5)
    assert np.isfinite(objective) and objective <= diverged["bound"]
    assert objective == pytest.approx(diverged["kept_objective"], rel=1e-12)


def test_display_shows_a_progress_bar(capsys):
    model = small_model()
    model.run_adam(manifold_data(50), num_epoch=2, minibatch_size=10, display=True)
    err = capsys.readouterr().err
    assert "adam" in err and "2/2" in err and "train_loss" in err


def test_the_progress_bar_is_disabled_unless_display_is_asked_for(monkeypatch):
    # the bar's own switch, seen where it is made (captured output depends on how tqdm finds a stream)
    asked = []
    real_tqdm = ae.train.tqdm

    def recording_tqdm(*args, **kwargs):
        asked.append(kwargs.get("disable"))
        return real_tqdm(*args, **kwargs)

    monkeypatch.setattr(ae.train, "tqdm", recording_tqdm)
    small_model().run_adam(manifold_data(20), num_epoch=1, minibatch_size=10)
    small_model().run_adam(manifold_data(20), num_epoch=1, minibatch_size=10, display=True)
    assert asked == [True, False]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(step_size=0), ValueError, "step_size must be positive"),
    (dict(step_size=-1e-3), ValueError, "step_size must be positive"),
    (dict(minibatch_size=0), ValueError, "minibatch_size must be in"),
    (dict(minibatch_size=101), ValueError, "minibatch_size must be in"),
    (dict(minibatch_size=2.5), TypeError, "minibatch_size must be an integer"),
    (dict(num_epoch=-1), ValueError, "num_epoch must be in"),
    (dict(l2_coef=-1), ValueError, "l2_coef"),
    (dict(test_inputs=np.ones((9, 5))), ValueError, "test_inputs have 9 rows"),
])
def test_bad_arguments(kwargs, error, match):
    options = {**dict(step_size=0.01, num_epoch=1, minibatch_size=10), **kwargs}
    with pytest.raises(error, match=match):
        small_model().run_adam(manifold_data(100), **options)


def test_bad_hf_arguments_and_untrained_net():
    with pytest.raises(ValueError, match="curvature_fraction"):
        small_model().run_hf(manifold_data(50), curvature_fraction=0)
    bare = ae.Autoencoder([ae.FCLayer((3, 3), ae.LinearActivationFunction())])
    with pytest.raises(ValueError, match="weights are not set"):
        bare.run_sgd(np.ones((3, 4)), minibatch_size=2)


def test_training_keeps_float32():
    data = manifold_data(60).astype(np.float32)
    model = small_model()
    model.set_weights(model.get_weights().astype(np.float32))
    history = model.run_adam(data, step_size=0.003, num_epoch=2, minibatch_size=20)
    assert model.get_weights().dtype == np.float32
    assert history["train_loss"][-1] < history["initial"]["train_loss"]


@pytest.mark.parametrize("method", METHODS)
def test_a_tied_autoencoder_trains_with_its_matrices_still_shared(method):
    data = manifold_data()
    model = small_model(tied=True)
    history = run(model, method, data)
    assert history["train_loss"][-1] < 0.5 * history["initial"]["train_loss"]
    layers = model.layers
    for k in range(len(layers) // 2):  # the decoder's matrix is still the encoder's, transposed
        assert np.array_equal(layers[len(layers) - 1 - k].W, layers[k].W.T)
    # and the run is the one a tied parameter vector gives: fewer weights than the untied net
    assert model.params_number < small_model(tied=False).params_number


def test_working_memory_does_not_grow_with_the_data():
    """Training on N examples keeps O(batch x widest layer) memory beyond data and weights."""
    def peak(n):
        data = manifold_data(n, dim=40)
        model = ae.Autoencoder([ae.FCLayer((40, 8), ae.TanhActivationFunction(), True),
                                ae.FCLayer((8, 40), ae.LinearActivationFunction(), True)])
        model.init_weights(0)
        tracemalloc.start()
        model.run_adam(data, num_epoch=1, minibatch_size=50, test_inputs=data)
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak_bytes - 2 * data.nbytes  # the data and one shuffled-index-sized copy allowed
    small, large = peak(2_000), peak(20_000)
    assert large < small + 2_000_000  # ten times the data, not ten times the working memory


class Scripted:
    """A stepper that moves to given weights and reports given minibatch objectives (None: the true
    one), so the guard meets exactly the sequence a test needs."""

    def __init__(self, weights, objectives):
        self.weights, self.objectives = weights, objectives

    def init(self, model, w):
        return 0

    def step(self, model, batch, w, l2_coef, k):
        reported = self.objectives[k]
        if reported is None:
            reported = model.compute_loss(batch)[0]
        return self.weights[k].copy(), reported, k + 1, {}


def guarded_run(weights, objectives, minibatch_size):
    data = manifold_data(n=40)
    model = small_model()
    w0 = model.get_weights().copy()
    with pytest.warns(RuntimeWarning, match="diverged"):
        history = ae.train.train(model, Scripted(weights(w0), objectives), data, num_epoch=3,
                                 minibatch_size=minibatch_size)
    return model, w0, history, data


def test_the_guard_keeps_the_weights_before_the_offending_step_and_the_model_holds_them():
    # step 0 moves w0 to w1, whose minibatch objective the next step reports as inf: w1 is out, w0 kept
    model, w0, history, data = guarded_run(lambda w0: [w0 + 0.01, w0 + 0.02], [None, float("inf")], 20)
    assert history["diverged"]["kept"] == "the weights before the last step"
    assert np.array_equal(model.get_weights(), w0)
    assert history["diverged"]["kept_objective"] == pytest.approx(full_objective(model, data, w0, 0.0)[1], rel=1e-12)


def test_when_the_step_before_is_out_too_the_guard_keeps_the_last_epoch_end_and_the_model_holds_it():
    # epoch 1 ends at w1 (inside the bound); epoch 2 moves to w2 = 1e3 w1, whose full-set objective breaks
    # the bound: the model must hold w1 again, not the w2 that the last measurement left in it
    model, w0, history, data = guarded_run(lambda w0: [w0 + 0.01, 1e3 * (w0 + 0.01), w0], [None, None, None], 40)
    assert history["diverged"]["kept"] == "the weights at the end of epoch 1"
    assert np.array_equal(model.get_weights(), w0 + 0.01)


def test_the_l2_term_enters_each_first_order_step_as_l2_coef_times_w():
    data = manifold_data(n=40)
    model = small_model()
    w0 = model.get_weights().copy()
    _, grad = model.compute_loss(data)
    model.run_sgd(data, step_size=0.1, num_epoch=1, minibatch_size=40, l2_coef=0.5)
    # one full-batch step on the objective F + l2/2 w.w, whose gradient is g + l2 w
    assert np.allclose(model.get_weights(), w0 - 0.1 * (grad + 0.5 * w0), rtol=0, atol=1e-15)


def test_evaluate_in_chunks_equals_one_pass_over_all_columns():
    data = manifold_data(n=25)
    model = small_model()
    w = model.get_weights().copy()
    loss, objective, grad_norm = ae.train.evaluate(model, data, w, 0.1, chunk_size=10)  # 10 + 10 + 5 columns
    whole_loss, whole_objective, whole_norm = full_objective(model, data, w, 0.1)
    assert loss == pytest.approx(whole_loss, rel=1e-14) and objective == pytest.approx(whole_objective, rel=1e-14)
    assert grad_norm == pytest.approx(whole_norm, rel=1e-13)


def test_the_divergence_bound_is_the_stated_one():
    data = manifold_data(n=40)
    model = small_model()
    w0 = model.get_weights().copy()
    initial = full_objective(model, data, w0, 0.0)[1]
    zero_output = float((data * data).sum()) / (2 * data.shape[1])
    with pytest.warns(RuntimeWarning) as caught:
        history = ae.train.train(model, Scripted([w0 + 0.01, w0], [None, float("inf")]), data, num_epoch=1,
                                 minibatch_size=20)
    assert history["diverged"]["bound"] == pytest.approx(1e3 * max(initial, zero_output), rel=1e-12)
    assert history["diverged"]["minibatch"] == 1 and history["diverged"]["epoch"] == 1
    assert str(caught[0].message).startswith("training diverged at epoch 1")  # the loop's default name


def test_the_divergence_warning_points_at_the_line_that_started_training():
    data = manifold_data(n=40)
    model = small_model()
    w0 = model.get_weights().copy()
    with pytest.warns(RuntimeWarning) as caught:
        ae.train.train(model, Scripted([w0 + 0.01, w0], [None, float("inf")]), data, num_epoch=1, minibatch_size=20)
    assert caught[0].filename == __file__
    with pytest.warns(RuntimeWarning) as caught:  # through a run_* method too: the user's line, not ours
        small_model().run_sgd(data, step_size=1e6, num_epoch=2, minibatch_size=20)
    assert caught[0].filename == __file__


def test_a_candidate_finite_but_above_the_bound_is_not_kept():
    # epoch 1 ends at w0 + 0.01; in epoch 2 the first step jumps far (its minibatch objective, reported
    # at the weights it starts from, is fine), the second step reports fine too, the third reports inf:
    # the weights before the last step are the far ones, finite but far above the bound
    data = manifold_data(n=40)
    model = small_model()
    w0 = model.get_weights().copy()
    far = 1e4 * (w0 + 0.01)
    steps = [w0 + 0.01, far, far + 1.0, far]
    with pytest.warns(RuntimeWarning, match="diverged"):
        history = ae.train.train(model, Scripted(steps, [None, None, None, float("inf")]), data, num_epoch=2,
                                 minibatch_size=40)
    assert history["diverged"]["kept"] == "the weights at the end of epoch 1"
    assert np.array_equal(model.get_weights(), w0 + 0.01)


def test_the_smallest_legal_arguments_are_accepted():
    data = manifold_data(n=1)  # one column, a minibatch of one, no epoch at all
    model = small_model()
    w0 = model.get_weights().copy()
    history = model.run_sgd(data, step_size=0.01, num_epoch=0, minibatch_size=1, test_inputs=data)
    assert history["train_loss"] == [] and np.array_equal(model.get_weights(), w0)
    history = model.run_sgd(data, step_size=0.01, num_epoch=1, minibatch_size=1, test_inputs=data[:, :1])
    assert len(history["train_loss"]) == 1


@pytest.mark.parametrize("call, error, says", [
    (lambda m, X: m.run_sgd(X[0]), ValueError, r"^inputs must be a 2-D array, got shape \(20,\)$"),
    (lambda m, X: m.run_sgd(X + 0j), TypeError,
     r"^training needs real inputs \(complex numbers are for complex-step checks\)$"),
    (lambda m, X: m.run_sgd(X, test_inputs=X[0]), ValueError, r"^test_inputs must be a 2-D array"),
    (lambda m, X: m.run_sgd(X[:5]), ValueError, r"^inputs have 5 rows, the autoencoder takes 10$"),
    (lambda m, X: m.run_sgd(X[:, :0]), ValueError, r"^inputs have no columns \(objects\)$"),
    (lambda m, X: m.run_sgd(X, test_inputs=X[:, :0]), ValueError,
     r"^test_inputs have no columns \(objects\): pass None for no test set$"),
    (lambda m, X: m.run_sgd(X, minibatch_size=50), ValueError, r"^minibatch_size must be in \[1, 20\], got 50$"),
    (lambda m, X: m.run_sgd(X, num_epoch=-1), ValueError, r"^num_epoch must be in >= 0, got -1$"),
])
def test_bad_training_input_errors_name_the_argument(call, error, says):
    with pytest.raises(error, match=says):
        call(small_model(), manifold_data(n=20))


def test_complex_weights_are_refused_by_name():
    model = small_model()
    model.set_weights(model.get_weights() + 0j)
    says = r"^training needs real weights \(complex numbers are for complex-step checks\)$"
    with pytest.raises(TypeError, match=says):
        model.run_sgd(manifold_data(n=20), num_epoch=1, minibatch_size=10)


def test_seconds_and_passes_are_cumulative_and_exact_and_nothing_is_printed_by_default(capsys):
    import time as clock

    class Slow(ae.train.GradientStepper):
        def step(self, *args):
            clock.sleep(0.01)
            return super().step(*args)

    data = manifold_data(n=30)
    tic = clock.perf_counter()
    history = ae.train.train(small_model(), Slow(ae.optim.SGD(0.01)), data, num_epoch=3, minibatch_size=10)
    wall = clock.perf_counter() - tic
    assert history["passes"] == [1.0, 2.0, 3.0]  # every example once per epoch, counted from zero
    assert history["epoch"] == [1, 2, 3]
    assert all(s >= 0.03 * (k + 1) for k, s in enumerate(history["seconds"]))  # 3 steps of 10 ms an epoch
    assert history["seconds"][-1] <= wall  # the steps' time, never more than the whole call's
    assert capsys.readouterr().err == ""  # display is off unless asked


@pytest.mark.bitexact
def test_the_default_seed_is_zero():
    data = manifold_data(n=30)
    runs = []
    for seed in ({}, {"seed": 0}):
        model = small_model()
        ae.train.train(model, ae.train.GradientStepper(ae.optim.SGD(0.01)), data, num_epoch=2, minibatch_size=10,
                       **seed)
        runs.append(model.get_weights())
    assert np.array_equal(*runs)


def test_a_step_that_makes_the_weights_nan_stops_and_keeps_the_weights_before_it():
    data = manifold_data(n=40)
    model = small_model()
    w0 = model.get_weights().copy()
    with pytest.warns(RuntimeWarning, match="the step made the weights NaN or inf"):
        history = ae.train.train(model, Scripted([w0 + 0.01, np.full_like(w0, np.nan)], [None, None]), data,
                                 num_epoch=1, minibatch_size=20)
    diverged = history["diverged"]
    assert (diverged["epoch"], diverged["minibatch"], diverged["reason"], diverged["kept"]) == (
        1, 1, "the step made the weights NaN or inf", "the weights before the step")
    assert np.array_equal(model.get_weights(), w0 + 0.01)


def test_an_epoch_whose_whole_set_objective_breaks_the_bound_is_named_so():
    data = manifold_data(n=40)
    model = small_model()
    w0 = model.get_weights().copy()
    with pytest.warns(RuntimeWarning):
        history = ae.train.train(model, Scripted([w0 + 0.01, 1e3 * (w0 + 0.01)], [None, None]), data, num_epoch=2,
                                 minibatch_size=40)
    diverged = history["diverged"]
    assert (diverged["epoch"], diverged["minibatch"]) == (2, None)
    assert diverged["reason"].startswith("the objective on the whole training set is ")
    assert history["epoch"] == [1]


def test_with_no_epoch_finished_the_guard_falls_back_to_the_initial_weights():
    data = manifold_data(n=40)
    model = small_model()
    w0 = model.get_weights().copy()
    far = 1e4 * (w0 + 0.01)
    with pytest.warns(RuntimeWarning):
        history = ae.train.train(model, Scripted([far, far + 1.0, far], [None, 0.0, float("inf")]), data,
                                 num_epoch=1, minibatch_size=10)
    diverged = history["diverged"]
    assert diverged["kept"] == "the initial weights" and np.array_equal(model.get_weights(), w0)
    assert diverged["kept_objective"] == history["initial"]["train_objective"]


def test_a_first_order_step_reports_the_objective_with_its_l2_term():
    data = manifold_data(n=20)
    model = small_model()
    w = model.get_weights().copy()
    _, objective, _, _ = ae.train.GradientStepper(ae.optim.SGD(0.1)).step(model, data, w, 0.5,
                                                                         ae.optim.SGD(0.1).init(w))
    assert objective == pytest.approx(full_objective(model, data, w, 0.5)[1], rel=1e-14)


def test_a_first_step_whose_objective_breaks_the_bound_keeps_the_initial_weights():
    data = manifold_data(n=40)
    model = small_model()
    w0 = model.get_weights().copy()
    with pytest.warns(RuntimeWarning):
        history = ae.train.train(model, Scripted([w0 + 1.0], [float("inf")]), data, num_epoch=1, minibatch_size=20)
    assert history["diverged"]["kept"] == "the initial weights" and np.array_equal(model.get_weights(), w0)


def test_a_full_batch_is_used_in_its_own_column_order():
    # shuffling a full batch would only change round-off, so it is not shuffled.  Checked on the batch the
    # model is given (data movement, exact), not on the weights after the step, whose round-off depends on
    # the memory layout and alignment BLAS sees (SkylakeX kernels round a copy differently)
    data = manifold_data(n=30)
    model = small_model()
    given = []
    compute_loss = model.compute_loss

    def recording(inputs):
        given.append(np.array(inputs, copy=True))
        return compute_loss(inputs)

    model.compute_loss = recording
    model.run_sgd(data, step_size=0.05, num_epoch=2, minibatch_size=30, l2_coef=1e-3)
    steps = [batch for batch in given if batch.shape == data.shape]  # the whole-set evaluations too
    assert len(steps) >= 2 and all(np.array_equal(batch, data) for batch in steps)
    given.clear()
    model.run_sgd(data, step_size=0.05, num_epoch=2, minibatch_size=29, l2_coef=1e-3)  # a true minibatch
    assert not all(np.array_equal(batch, data[:, :29]) for batch in given if batch.shape == (data.shape[0], 29))
