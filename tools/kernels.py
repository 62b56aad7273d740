"""Run the tests that demand bit equality (pytest marker ``bitexact``) under every OpenBLAS kernel this CPU
can execute: ``python tools/kernels.py [pytest args]`` (the tox env ``kernels``).

``python tools/kernels.py --spread [OUT.json]`` instead measures how far apart the kernels take one seeded
study run (Adam on the tanh 784-64-2-64-784 net, minibatch 20, quick mode's 10 epochs of 1,000 embedded
digits): the largest relative difference of the test digits' final 2-unit codes and of the losses from
the first kernel's, as a record.

Each kernel is asked for with OPENBLAS_CORETYPE in the tests' environment alone; the kernel OpenBLAS
actually runs is read back with threadpoolctl and printed, since OpenBLAS quietly falls back to its own
choice for a name the CPU cannot run (Cooperlake without avx512_bf16) and maps some names onto others
(Zen onto Haswell).  A kernel that runs what another already ran is said and not run twice.  Exits
non-zero if any run failed.
"""
import json
import os
import pathlib
import subprocess
import sys

# (name asked for, CPU flag it needs): Prescott, Sandybridge and Haswell run on every x86-64 CPU with AVX2;
# the AVX-512 kernels only where /proc/cpuinfo lists avx512f (Cooperlake also avx512_bf16)
KERNELS = (("Prescott", "sse3"), ("Sandybridge", "avx"), ("Haswell", "avx2"), ("SkylakeX", "avx512f"),
           ("Cooperlake", "avx512_bf16"))
PROBE = ("import numpy, threadpoolctl; "
         "print(*[i['architecture'] for i in threadpoolctl.threadpool_info() if i['internal_api'] == 'openblas'])")


def cpu_flags():
    text = pathlib.Path("/proc/cpuinfo").read_text() if pathlib.Path("/proc/cpuinfo").exists() else ""
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return set(flags) | ({"sse3"} if "pni" in flags else set())  # Linux calls SSE3 "pni"


def kernel_run(name):
    """The kernel OpenBLAS runs when ``name`` is asked for (empty when numpy's BLAS is not OpenBLAS)."""
    env = {**os.environ, "OPENBLAS_CORETYPE": name}
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


RUN = """
import json, sys
import numpy as np
from studies import data, protocol, runner
config = protocol.make_config("tanh 784-64-2-64-784", "adam", 0.003, 20, 10, 0)
record, arrays = runner.run_one(config, data.DataSpec(None, 1000, 0, 500))
json.dump({"codes": np.asarray(arrays["codes_final"]).ravel().tolist(),
           "losses": [record["final_validation_loss"], record["final_test_loss"]]}, sys.stdout)
"""


def spread(out):
    """{kernel: largest relative difference from the first kernel's run} of weights and losses, saved."""
    runs, record = {}, {"command": "python tools/kernels.py --spread", "run": RUN.strip(), "kernels": {}}
    for name, flag in KERNELS:
        actual = kernel_run(name) if flag in cpu_flags() else ""
        if not actual or actual in runs:
            continue
        env = {**os.environ, "OPENBLAS_CORETYPE": name}
        runs[actual] = json.loads(subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True,
                                                 text=True, check=True).stdout)
        first = next(iter(runs.values()))
        w, w0 = (np.asarray(r["codes"]) for r in (runs[actual], first))
        losses = [abs(a - b) / abs(b) for a, b in zip(runs[actual]["losses"], first["losses"])]
        record["kernels"][actual] = {"asked_for": name, "codes": float(np.max(np.abs(w - w0)) / np.max(np.abs(w0))),
                                     "losses": max(losses), "bit_equal": bool(np.array_equal(w, w0))}
        print(f"kernels: {actual}: {record['kernels'][actual]}", flush=True)
    pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(out).write_text(json.dumps(record, indent=1))
    print(f"kernels: record {out}")
    return 0


def main(pytest_args):
    flags, ran, failed = cpu_flags(), {}, []
    for name, flag in KERNELS:
        if flag not in flags:
            print(f"kernels: {name}: skipped, this CPU lacks {flag} (/proc/cpuinfo)", flush=True)
            continue
        actual = kernel_run(name)
        if not actual:
            print(f"kernels: {name}: skipped, numpy's BLAS is not OpenBLAS", flush=True)
            continue
        if actual in ran:
            print(f"kernels: {name}: OpenBLAS runs {actual} for it here, already run for {ran[actual]}", flush=True)
            continue
        ran[actual] = name
        print(f"kernels: {name}: OpenBLAS runs {actual}", flush=True)
        env = {**os.environ, "OPENBLAS_CORETYPE": name}
        command = [sys.executable, "-m", "pytest", "-m", "bitexact", "-q", *pytest_args]
        code = subprocess.run(command, env=env).returncode
        print(f"kernels: {name} ({actual}): {'passed' if code == 0 else f'FAILED (pytest exit {code})'}", flush=True)
        if code:
            failed.append(name)
    print(f"kernels: ran {', '.join(f'{n} ({a})' for a, n in ran.items())}"
          + (f"; failed under {', '.join(failed)}" if failed else "; every marked test passed under each"))
    return 1 if failed or not ran else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--spread"]:
        import numpy as np

        sys.exit(spread(sys.argv[2] if len(sys.argv) > 2 else "results/kernels.json"))
    sys.exit(main(sys.argv[1:]))
