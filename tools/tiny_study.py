"""A tiny study (two architectures, 2 epochs, 42 runs, about a minute) on 300 embedded digits.

    python tools/tiny_study.py OUT

With tools/compare_study_records.py it shows that a change of code layout changed no result: run it
at the commit before and after, then compare the two folders.
"""
import sys

from studies import __main__ as cli

if __name__ == "__main__":
    from studies import protocol
    protocol.MODES["quick"] = {"architectures": ["linear 784-2-784", "tanh 784-64-2-64-784 tied"], "epochs": 2,
                             "steps": slice(1, 3), "minibatches": [10, 20], "hf_minibatches": [60], "seeds": 2,
                             "max_extensions": 0}
    sys.exit(cli.main(["--quick", "--train-subset", "300", "--validation-size", "100", "--workers", "1",
                       "--out", sys.argv[1]]))
