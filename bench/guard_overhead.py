"""Cost of the non-finite guard (``runner.check_finite``): DQN on CartPole with one update per 4 env steps
(the guard's worst case: a batch and a metrics check per update), on and off, interleaved.

``python bench/guard_overhead.py --steps 5000 --repeats 3`` prints each time and the ratio on/off.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from cardio.build import build_runner
from cardio.config import compose_train


def one_run(check: bool, steps: int) -> float:
    cfg = compose_train(
        overrides=[
            "~zoo",
            "logger=csv",
            f"runner.total_steps={steps}",
            "runner.eval_freq=0",
            "runner.eval_episodes=1",
            "runner.checkpoint_dir=null",
            f"runner.check_finite={str(check).lower()}",
            f"run_dir=/tmp/cardio_guard_bench/{check}",
        ],
    )
    runner = build_runner(cfg)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner.run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeats):
        for check in (False, True):
            times[check].append(one_run(check, args.steps))
    on, off = np.median(times[True]), np.median(times[False])
    print(f"check_finite=true  {times[True]}\ncheck_finite=false {times[False]}")
    print(f"median on/off = {on / off:.3f}")


if __name__ == "__main__":
    main()
