"""Benchmark: the engine against the matrix-multiply bound, and against torch if installed.

    python -m ae.bench [--rounds 7] [--out results/bench.json]

Net: 784-256-128-2-128-256-784 with biases, tanh hidden layers, linear code
and output layers.  For float64 and float32 and batches B = 100 and 1000 it
times loss + gradient, Hv from scratch (compute_loss then compute_hessvec),
Hv and GNv at the point of a previous compute_loss, and one Adam epoch over
4000 examples at batch 100.  Each time is the median of ``rounds`` runs and
is reported as a multiple of the GEMM-bound time: the measured time of the
very matrix products the quantity needs (same shapes, same dtype, same run).
With torch installed, the same quantities are timed with torch autograd /
torch.func in the same run, and the ratios are printed.  Timings are
benchmarks, never tests: the machine is shared and noisy.
"""

import argparse
import json
import pathlib
import platform
import time
import tracemalloc

import numpy as np

import ae
from ae import optim
from ae.provenance import source_hash
from ae.train import GradientStepper

WIDTHS = [784, 256, 128, 2, 128, 256, 784]
LETTERS = "ttlttl"  # tanh hidden layers; linear code layer and output
LINEAR = {k for k, g in enumerate(LETTERS) if g == "l"}


def build(dtype):
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
    fn()  # warm up
    times = []
    for _ in range(rounds):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return float(np.median(times))


def gemm_bound(shapes, dtype, rounds):
    """Measured time of exactly these products, summed over distinct shapes."""
    rng = np.random.default_rng(0)
    total = 0.0
    for shape in set(shapes):
        m, k, n = shape
        A, Bm = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
        total += shapes.count(shape) * median_time(lambda A=A, Bm=Bm: A @ Bm, rounds)
    return total


def engine_tasks(dtype, B):
    model = build(dtype)
    rng = np.random.default_rng(1)
    X = rng.random((784, B)).astype(dtype)
    p = rng.standard_normal(model.params_number).astype(dtype)
    model.compute_loss(X)

    def hv_scratch():
        model.compute_loss(X)
        model.compute_hessvec(p)

    return model, X, {"loss+grad": lambda: model.compute_loss(X), "Hv scratch": hv_scratch,
                      "Hv": lambda: model.compute_hessvec(p), "GNv": lambda: model.compute_gaussnewtonvec(p)}


def adam_epoch(dtype, data):
    model = build(dtype)
    stepper = GradientStepper(optim.Adam(1e-3))
    w = model.get_weights()
    state = stepper.init(model, w)
    for start in range(0, data.shape[1], 100):
        model.set_weights(w)
        w, _, state, _ = stepper.step(model, data[:, start:start + 100], w, 0.0, state)


def torch_tasks(dtype, B):
    import torch
    from torch.func import grad, jvp, vjp

    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    gen = torch.Generator().manual_seed(0)
    params = []
    for n_in, n_out in zip(WIDTHS, WIDTHS[1:]):
        params += [torch.randn(n_out, n_in, generator=gen, dtype=tdtype) / n_in**0.5,
                   torch.zeros(n_out, 1, dtype=tdtype)]
    X = torch.rand(784, B, generator=gen, dtype=tdtype)
    p = [torch.randn_like(t) for t in params]

    def forward(ps, x):
        for k in range(len(WIDTHS) - 1):
            x = ps[2 * k] @ x + ps[2 * k + 1]
            x = x if k in LINEAR else torch.tanh(x)
        return x

    def loss(ps, x):
        d = forward(ps, x) - x
        return (d * d).sum() / (2 * x.shape[1])

    leaves = [t.clone().requires_grad_(True) for t in params]

    def loss_grad():
        return torch.autograd.grad(loss(leaves, X), leaves)

    def hessvec():
        return jvp(lambda ps: grad(loss)(ps, X), (params,), (p,))[1]

    def gaussnewtonvec():
        out, Jp = jvp(lambda ps: forward(ps, X), (params,), (p,))
        return vjp(lambda ps: forward(ps, X), params)[1](Jp / B)

    return {"loss+grad": loss_grad, "Hv scratch": hessvec, "GNv": gaussnewtonvec}


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


def peak_memory(dtype, B=1000):
    """(peak bytes of one loss+grad, bytes of stored activations + parameters)."""
    model, X, tasks = engine_tasks(dtype, B)
    stored = sum(layer.u.nbytes + layer.z.nbytes + layer.g1.nbytes for layer in model.layers)
    stored += model.get_weights().nbytes
    tracemalloc.start()
    tasks["loss+grad"]()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, stored


def run(rounds=7, with_torch=True):
    rows = []
    data = {dt: np.random.default_rng(2).random((784, 4000)).astype(dt) for dt in (np.float64, np.float32)}
    try:
        import torch
        torch_version = torch.__version__ if with_torch else None
    except ImportError:
        torch_version = None
    for dtype in (np.float64, np.float32):
        for B in (100, 1000):
            _, _, tasks = engine_tasks(dtype, B)
            theirs = torch_tasks(dtype, B) if torch_version else {}
            for name, fn in tasks.items():
                shapes = gemm_shapes(name, B)
                row = {"dtype": np.dtype(dtype).name, "batch": B, "quantity": name, "flops": flops(shapes),
                       "seconds": median_time(fn, rounds), "gemm_bound_seconds": gemm_bound(shapes, dtype, rounds)}
                row["x_gemm_bound"] = row["seconds"] / row["gemm_bound_seconds"]
                if name in theirs:
                    row["torch_seconds"] = median_time(theirs[name], rounds)
                    row["x_torch"] = row["seconds"] / row["torch_seconds"]
                rows.append(row)
        row = {"dtype": np.dtype(dtype).name, "batch": 100, "quantity": "Adam epoch (4000)",
               "seconds": median_time(lambda dt=dtype: adam_epoch(dt, data[dt]), max(3, rounds // 2))}
        if torch_version:
            row["torch_seconds"] = median_time(lambda dt=dtype: torch_adam_epoch(dt, data[dt]), max(3, rounds // 2))
            row["x_torch"] = row["seconds"] / row["torch_seconds"]
        rows.append(row)
    peak, stored = peak_memory(np.float64)
    return {"what": "engine benchmark", "command": "python -m ae.bench",
            "code_version": source_hash("ae", exclude=("__main__.py",)), "widths": WIDTHS, "rounds": rounds,
            "python": platform.python_version(), "numpy": np.__version__, "torch": torch_version,
            "rows": rows, "memory": {"peak_loss_grad_bytes": peak, "stored_bytes": stored,
                                     "ratio": peak / stored}}


def table(record):
    lines = [f"{'dtype':8} {'B':>5} {'quantity':18} {'ms':>8} {'GEMM ms':>8} {'x GEMM':>7} "
             f"{'torch ms':>9} {'x torch':>8}"]
    for r in record["rows"]:
        gemm = f"{1000 * r['gemm_bound_seconds']:8.2f} {r['x_gemm_bound']:7.2f}" if "gemm_bound_seconds" in r \
            else f"{'-':>8} {'-':>7}"
        torch = f"{1000 * r['torch_seconds']:9.2f} {r['x_torch']:8.2f}" if "torch_seconds" in r \
            else f"{'-':>9} {'-':>8}"
        lines.append(f"{r['dtype']:8} {r['batch']:5d} {r['quantity']:18} {1000 * r['seconds']:8.2f} {gemm} {torch}")
    m = record["memory"]
    lines.append(f"peak memory of loss+grad at B=1000 (float64): {m['peak_loss_grad_bytes'] / 1e6:.1f} MB, "
                 f"{m['ratio']:.2f} x the stored activations and parameters ({m['stored_bytes'] / 1e6:.1f} MB)")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ae.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--out", default="results/bench.json")
    args = parser.parse_args(argv)
    record = run(args.rounds, with_torch=not args.no_torch)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(table(record))
    print(f"record: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
