"""Thread policy and extraction batch size for the article's CNN on the CPU.

    python bench/threads.py [--rounds 2]      # prints a Markdown table (about 8 minutes)

For each OpenMP waiting policy — ``OMP_WAIT_POLICY=PASSIVE`` (the project's choice), OpenMP's
default spinning, and bounded spinning with ``GOMP_SPINCOUNT`` — a fresh process trains the
article's CNN for one timed epoch of 6,400 CIFAR-10 images (batch 128, channels-last, 2
threads) and extracts the test set with the fused inference model at batch sizes 32 to 256.
Everything runs on an idle machine and again while another process keeps both cores busy with
matrix products. Needs the images written by ``bench/cifar_speed.py`` (bench/out/cifar_speed/data).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cifar_speed import cores_busy  # noqa: E402  (the same load on the cores)

DATA = HERE / "out" / "cifar_speed" / "data"
POLICIES = {
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "default spin": {},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
}
BATCHES = (32, 64, 128, 256)

CHILD = r"""
import sys, time
import numpy as np, torch
from latent_atlas.activations import inference_model
from latent_atlas.models import ArticleCNN, to_tensor
d = sys.argv[1]
torch.set_num_threads(2)
n = 6400
x = to_tensor(np.load(d + "/x_train.npy")[:n], channels_last=True)
y = torch.from_numpy(np.load(d + "/y_train.npy")[:n])
torch.manual_seed(0)
model = ArticleCNN((32, 32, 3), 10).to(memory_format=torch.channels_last)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
lf = torch.nn.CrossEntropyLoss()
out = []
for epoch in range(2):  # the first is a warm-up
    t = time.perf_counter()
    perm = torch.randperm(n)
    for i in range(0, n, 128):
        idx = perm[i : i + 128]
        opt.zero_grad(set_to_none=True)
        loss = lf(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        loss.item()
    train = n / (time.perf_counter() - t)
out.append(train)
xt = np.load(d + "/x_test.npy")
fast = inference_model(model.eval())
for bs in (32, 64, 128, 256):
    with torch.inference_mode():
        fast(to_tensor(xt[:512], channels_last=True))
        t = time.perf_counter()
        for i in range(0, len(xt), bs):
            fast(to_tensor(xt[i : i + bs], channels_last=True))
        out.append(len(xt) / (time.perf_counter() - t))
print(" ".join(f"{v:.1f}" for v in out))
"""


def measure(env_extra: dict[str, str]) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_extra)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(DATA)], env=env, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    return [float(v) for v in done.stdout.split()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not (DATA / "x_test.npy").is_file():
        sys.exit(f"{DATA} is missing: run bench/cifar_speed.py first (it writes the images)")
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.2f}\n")
    header = " | ".join(f"extract, batch {b}" for b in BATCHES)
    print(f"| cores | policy | train img/s | {header} |")
    print("|---|---|---:|" + "---:|" * len(BATCHES))
    for condition in ("idle", "loaded"):
        runs: dict[str, list[list[float]]] = {p: [] for p in POLICIES}
        with cores_busy(condition == "loaded", settle=2.0):
            for _ in range(args.rounds):  # interleaved, so drifting load hits all alike
                for name, extra in POLICIES.items():
                    runs[name].append(measure(extra))
        for name, rows in runs.items():
            med = [statistics.median(col) for col in zip(*rows, strict=True)]
            cells = " | ".join(f"{v:,.0f}" for v in med)
            print(f"| {condition} | {name} | {cells} |", flush=True)
    print(
        f"\n(medians of {args.rounds} interleaved rounds; load average at the end "
        f"{os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main()
