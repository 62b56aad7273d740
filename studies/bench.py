"""Benchmark: the engine against the matrix-multiply bound, torch and JAX (when installed).

    python -m studies.bench [--rounds 7] [--out results/bench.json] [--without torch jax]

Net: 784-256-128-2-128-256-784 with biases, tanh hidden layers, linear code
and output layers.  For float64 and float32 and batches B = 100 and 1000 it
times loss + gradient, Hv from scratch (compute_loss then compute_hessvec),
Hv and GNv at the point of a previous compute_loss, and one Adam epoch over
4000 examples at batch 100.  Each time is the median of ``rounds`` runs and
is reported as a multiple of the GEMM-bound time: the measured time of the
very matrix products the quantity needs (same shapes, same dtype, same run).
torch (autograd, torch.func, torch.optim.Adam) and JAX (jit) compute the same
quantities in the same run.  torch's own GEMM-bound time (its BLAS, same
shapes) is measured too: it says how much of a ratio against torch is the
matrix library.  (A lone jitted JAX product pays a dispatch cost that its
fused programs do not, so it would be no bound.)
Timings are benchmarks, never tests: the machine is shared and noisy.
"""

import argparse
import hashlib
import importlib
import json
import pathlib
import platform
import time
import tracemalloc

import numpy as np

import ae
from ae import optim
from ae.train import GradientStepper
from checks.provenance import source_hash

WIDTHS = [784, 256, 128, 2, 128, 256, 784]
LETTERS = "ttlttl"  # tanh hidden layers; linear code layer and output
LINEAR = {k for k, g in enumerate(LETTERS) if g == "l"}
FRAMEWORKS = ("torch", "jax")  # compared when installed


def code_version():
    """A hash of the engine and this file (the timings depend on both)."""
    digest = hashlib.sha256(source_hash("ae", exclude=("__main__.py",)).encode())
    digest.update(pathlib.Path(__file__).read_bytes())
    return digest.hexdigest()[:12]


def benchmark_model(dtype):
    """The benchmark net (784-256-128-2-128-256-784) with seeded weights in ``dtype``."""
    model = ae.build(WIDTHS, LETTERS)
    model.init_weights(0, dtype=dtype)
    return model


PASSES = {"forward": ["forward"], "loss+grad": ["forward", "backward"],
          "Hv scratch": ["forward", "backward", "R forward", "R backward"],
          "Hv": ["R forward", "R backward"], "GNv": ["R forward", "backward"]}


def gemm_shapes(quantity, B):
    """(m, k, n) of every product the quantity needs, A (m x k) @ B (k x n).

    Only the necessary ones: the first layer needs no derivative with
    respect to its input (the data), nor an R{input} term.
    """
    shapes = []
    for k, (n_in, n_out) in enumerate(zip(WIDTHS, WIDTHS[1:])):
        first = k == 0
        W_Z, dW, dZ = (n_out, n_in, B), (n_out, B, n_in), (n_in, n_out, B)
        per_pass = {"forward": [W_Z], "backward": [dW] + ([] if first else [dZ]),
                    "R forward": [W_Z] + ([] if first else [W_Z]),
                    "R backward": [dW] + ([] if first else [dW, dZ, dZ])}
        for name in PASSES[quantity]:
            shapes += per_pass[name]
    return shapes


def flops(shapes):
    return sum(2 * m * k * n for m, k, n in shapes)


def median_time(fn, rounds):
    fn()  # warm up (and compile, for JAX)
    times = []
    for _ in range(rounds):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return float(np.median(times))


def load_framework(name):
    """The imported module, or None when it is not installed."""
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    if name == "jax":
        module.config.update("jax_enable_x64", True)  # float64 arrays stay float64
    return module


def gemm_bound(shapes, dtype, rounds, framework="numpy"):
    """Measured time of exactly these products, summed over distinct shapes (numpy or torch)."""
    if framework == "torch":
        import torch
        convert, matmul = torch.from_numpy, torch.matmul
    else:
        convert, matmul = (lambda a: a), np.matmul
    rng = np.random.default_rng(0)
    total = 0.0
    for shape in set(shapes):
        m, k, n = shape
        A, B = (convert(rng.standard_normal(s).astype(dtype)) for s in ((m, k), (k, n)))
        total += shapes.count(shape) * median_time(lambda A=A, B=B: matmul(A, B), rounds)
    return total


def engine_tasks(dtype, B):
    """The engine's quantities on the very problem torch and JAX get (reference_problem)."""
    params, X, directions = reference_problem(dtype, B)
    model = ae.build(WIDTHS, LETTERS)
    model.set_weights(np.concatenate([a.ravel() for a in params]))  # W row-major, then b: the engine's layout
    p = np.concatenate([a.ravel() for a in directions])
    model.compute_loss(X)

    def hv_scratch():
        model.compute_loss(X)
        model.compute_hessvec(p)

    return {"loss+grad": lambda: model.compute_loss(X), "Hv scratch": hv_scratch,
            "Hv": lambda: model.compute_hessvec(p), "GNv": lambda: model.compute_gaussnewtonvec(p)}


def adam_epoch(dtype, data):
    model = benchmark_model(dtype)
    stepper = GradientStepper(optim.Adam(1e-3))
    w = model.get_weights()
    state = stepper.init(model, w)
    for start in range(0, data.shape[1], 100):
        model.set_weights(w)
        w, _, state, _ = stepper.step(model, data[:, start:start + 100], w, 0.0, state)


def reference_problem(dtype, B):
    """Random weights (W / sqrt(fan-in), zero biases), data and direction as numpy arrays."""
    rng = np.random.default_rng(0)
    params = []
    for n_in, n_out in zip(WIDTHS, WIDTHS[1:]):
        params += [(rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dtype), np.zeros((n_out, 1), dtype)]
    X = rng.random((784, B)).astype(dtype)
    return params, X, [rng.standard_normal(t.shape).astype(dtype) for t in params]


def framework_model(tanh):
    """(forward, loss) of the benchmark net for arrays of torch or JAX, given their tanh."""

    def forward(ps, x):
        for k in range(len(WIDTHS) - 1):
            x = ps[2 * k] @ x + ps[2 * k + 1]
            x = x if k in LINEAR else tanh(x)
        return x

    def loss(ps, x):
        d = forward(ps, x) - x
        return (d * d).sum() / (2 * x.shape[1])

    return forward, loss


def torch_tasks(dtype, B):
    import torch
    from torch.func import grad, jvp, vjp

    params, X, p = ([torch.from_numpy(a) for a in arrays] if isinstance(arrays, list) else torch.from_numpy(arrays)
                    for arrays in reference_problem(dtype, B))

    forward, loss = framework_model(torch.tanh)
    leaves = [t.clone().requires_grad_(True) for t in params]

    def loss_grad():
        return torch.autograd.grad(loss(leaves, X), leaves)

    def hessvec():
        return jvp(lambda ps: grad(loss)(ps, X), (params,), (p,))[1]

    def gaussnewtonvec():
        out, Jp = jvp(lambda ps: forward(ps, X), (params,), (p,))
        return vjp(lambda ps: forward(ps, X), params)[1](Jp / B)

    return {"loss+grad": loss_grad, "Hv scratch": hessvec, "GNv": gaussnewtonvec}


def jax_tasks(dtype, B):
    import jax
    import jax.numpy as jnp

    params, X, p = ([jnp.asarray(a) for a in arrays] if isinstance(arrays, list) else jnp.asarray(arrays)
                    for arrays in reference_problem(dtype, B))

    forward, loss = framework_model(jnp.tanh)
    loss_grad = jax.jit(jax.value_and_grad(loss))
    hessvec = jax.jit(lambda ps, v: jax.jvp(lambda q: jax.grad(loss)(q, X), (ps,), (v,))[1])

    @jax.jit
    def gaussnewtonvec(ps, v):
        _, Jp = jax.jvp(lambda q: forward(q, X), (ps,), (v,))
        return jax.vjp(lambda q: forward(q, X), ps)[1](Jp / B)

    def done(fn, *args):
        return lambda: jax.block_until_ready(fn(*args))

    return {"loss+grad": done(loss_grad, params, X), "Hv scratch": done(hessvec, params, p),
            "GNv": done(gaussnewtonvec, params, p)}


def torch_adam_epoch(dtype, data):
    import torch

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    layers = []
    for k, (n_in, n_out) in enumerate(zip(WIDTHS, WIDTHS[1:])):
        layers.append(torch.nn.Linear(n_in, n_out, dtype=tdtype))
        if k not in LINEAR:
            layers.append(torch.nn.Tanh())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    X = torch.from_numpy(np.ascontiguousarray(data.T))  # torch's layout: objects x features
    for start in range(0, X.shape[0], 100):
        batch = X[start:start + 100]
        opt.zero_grad()
        d = net(batch) - batch
        ((d * d).sum() / (2 * batch.shape[0])).backward()
        opt.step()


FRAMEWORK_TASKS = {"torch": torch_tasks, "jax": jax_tasks}


def _nbytes(arrays):
    """Bytes of the distinct arrays among ``arrays`` (None and repeats skipped)."""
    distinct = {id(a): a for a in arrays if a is not None}
    return sum(a.nbytes for a in distinct.values())


def memory(dtype=np.float64, B=1000):
    """Peak memory of one loss + gradient and what the engine keeps, in bytes.

    The peak is what the call allocates at its highest (tracemalloc) plus the
    parameters, which exist before it; it is compared with the forward state
    (every layer's u, z, g') plus the parameters.  The data are the caller's.
    """
    model = benchmark_model(dtype)
    X = np.random.default_rng(1).random((784, B)).astype(dtype)
    model.compute_loss(X)
    tracemalloc.start()
    _, grad = model.compute_loss(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    layers = model.layers
    forward_state = _nbytes([a for layer in layers for a in (layer.u, layer.z, layer.g1)])
    params = _nbytes([a for layer in layers for a in (layer.W, layer.b)])
    return {"peak_loss_grad_bytes": peak, "forward_state_bytes": forward_state, "parameter_bytes": params,
            "backward_state_bytes": _nbytes([layer.derivs for layer in layers]), "gradient_bytes": grad.nbytes,
            "stored_bytes": forward_state + params, "ratio": (peak + params) / (forward_state + params)}


# Idle BLAS and OpenMP threads of one library spin for up to ~0.2 s after its last call
# and slow the next library's threads (seen here: torch 20.5 ms right after the engine,
# 19.1 ms after a pause); each library is timed in a phase of its own after a pause.
SETTLE_SECONDS = 0.5


def timed(tasks, rounds):
    """{quantity: median seconds}, measured after the other libraries' threads went idle."""
    time.sleep(SETTLE_SECONDS)
    return {quantity: median_time(fn, rounds) for quantity, fn in tasks.items()}


def add_framework(rows, name, seconds, bounds=None):
    """Put a framework's times (and GEMM bounds) into the rows of the same quantities."""
    for row in rows:
        if row["quantity"] in seconds:
            row[f"{name}_seconds"] = seconds[row["quantity"]]
            row[f"x_{name}"] = row["seconds"] / row[f"{name}_seconds"]
            if bounds:
                row[f"{name}_gemm_bound_seconds"] = bounds[row["quantity"]]


def adam_row(dtype, rounds, with_torch):
    """One Adam epoch over 4000 examples at batch 100, ours and (optionally) torch's."""
    data = np.random.default_rng(2).random((784, 4000)).astype(dtype)
    rounds, quantity = max(3, rounds // 2), "Adam epoch (4000)"
    seconds = timed({quantity: lambda: adam_epoch(dtype, data)}, rounds)[quantity]
    row = {"dtype": np.dtype(dtype).name, "batch": 100, "quantity": quantity, "seconds": seconds}
    if with_torch:
        add_framework([row], "torch", timed({quantity: lambda: torch_adam_epoch(dtype, data)}, rounds))
    return row


def run(rounds=7, frameworks=FRAMEWORKS, batches=(100, 1000)):
    modules = {name: load_framework(name) for name in frameworks}
    modules = {name: module for name, module in modules.items() if module is not None}
    rows = []
    for dtype in (np.float64, np.float32):
        for B in batches:
            seconds = timed(engine_tasks(dtype, B), rounds)
            shapes = {quantity: gemm_shapes(quantity, B) for quantity in seconds}
            batch_rows = [{"dtype": np.dtype(dtype).name, "batch": B, "quantity": quantity,
                           "flops": flops(shapes[quantity]), "seconds": seconds[quantity],
                           "gemm_bound_seconds": gemm_bound(shapes[quantity], dtype, rounds)} for quantity in seconds]
            for row in batch_rows:
                row["x_gemm_bound"] = row["seconds"] / row["gemm_bound_seconds"]
            for name in modules:
                theirs = timed(FRAMEWORK_TASKS[name](dtype, B), rounds)
                bounds = {q: gemm_bound(shapes[q], dtype, rounds, framework=name) for q in theirs} \
                    if name == "torch" else None
                add_framework(batch_rows, name, theirs, bounds)
            rows += batch_rows
        rows.append(adam_row(dtype, rounds, "torch" in modules))
    return {"what": "engine benchmark", "command": "python -m studies.bench",
            "code_version": code_version(), "widths": WIDTHS, "rounds": rounds,
            "python": platform.python_version(), "numpy": np.__version__,
            **{name: (modules[name].__version__ if name in modules else None) for name in FRAMEWORKS},
            "rows": rows, "memory": memory()}


def _ms(row, key):
    return f"{1000 * row[key]:.2f}" if key in row else "-"


def _ratio(row, key):
    return f"{row[key]:.2f}" if key in row else "-"


def _line(cells, widths):
    """The first three cells left-aligned (labels), the rest right-aligned (numbers)."""
    return " ".join(f"{c:{w}}" if k < 3 else f"{c:>{w}}" for k, (c, w) in enumerate(zip(cells, widths)))


def table(record):
    columns = [("dtype", 8), ("B", 5), ("quantity", 18), ("ms", 8), ("GEMM ms", 8), ("x GEMM", 7)]
    for name in FRAMEWORKS:
        columns += [(f"{name} ms", 9), (f"x {name}", 8)] + ([("torch GEMM", 10)] if name == "torch" else [])
    titles, widths = zip(*columns)
    lines = [_line(titles, widths)]
    for r in record["rows"]:
        cells = [r["dtype"], str(r["batch"]), r["quantity"], _ms(r, "seconds"), _ms(r, "gemm_bound_seconds"),
                 _ratio(r, "x_gemm_bound")]
        for name in FRAMEWORKS:
            cells += [_ms(r, f"{name}_seconds"), _ratio(r, f"x_{name}")]
            cells += [_ms(r, "torch_gemm_bound_seconds")] if name == "torch" else []
        lines.append(_line(cells, widths))
    m = record["memory"]
    lines.append(f"peak memory of loss+grad at B=1000 (float64): {m['peak_loss_grad_bytes'] / 1e6:.1f} MB + "
                 f"parameters = {m['ratio']:.2f} x (forward state {m['forward_state_bytes'] / 1e6:.1f} MB + parameters "
                 f"{m['parameter_bytes'] / 1e6:.1f} MB); kept for Hv {m['backward_state_bytes'] / 1e6:.1f} MB, "
                 f"gradient {m['gradient_bytes'] / 1e6:.1f} MB")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m studies.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--without", nargs="*", default=[], choices=FRAMEWORKS,
                        help="skip these frameworks even if installed")
    parser.add_argument("--out", default="results/bench.json")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    record = run(args.rounds, frameworks=[f for f in FRAMEWORKS if f not in args.without])
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(table(record))
    print(f"record: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
