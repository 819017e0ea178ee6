"""Training and extraction speed on the CPU: latent-atlas against the article's Keras code and
against plain eager PyTorch, on the same CIFAR-10 images, idle and with the cores loaded.

    python -m venv bench/out/tf-venv && bench/out/tf-venv/bin/pip install tensorflow-cpu==2.21.0
    python bench/cifar_speed.py [--train-images 15000] [--rounds 3]

Each measurement runs in its own fresh process, one after the other:

* **Keras** (TensorFlow 2.21 CPU, oneDNN on, in ``bench/out/tf-venv``): the article's model and
  ``compile``/``fit`` exactly as in the article (batch 128), one warm-up epoch then one timed
  epoch; extraction is the article's ``densemodel.predict(X_test)`` (its default batch of 32);
* **plain eager PyTorch**: the same network (latent-atlas's ``ArticleCNN``), a textbook training
  loop, NCHW tensors, torch's default threads and OpenMP's default waiting;
* **latent-atlas**: ``train_model`` and ``extract_activations`` with the project's thread
  settings (see ``latent_atlas.threads``) and channels-last tensors.

"Loaded" repeats everything while another process keeps both cores busy with float32 matrix
products (numpy/OpenBLAS, 2 threads). Images per second count training images (no validation)
and test images; the FLOP rate uses the network's 21.2 MFLOP forward pass per image (three
times that for a training step) against the CPU's fp32 peak: 2 cores × 32 FLOP/cycle (AVX-512 on
Zen 4 retires two 256-bit FMA per cycle) × the clock measured by a large matrix product.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "cifar_speed"
TF_PYTHON = HERE / "out" / "tf-venv" / "bin" / "python"
SHARED = HERE.parents[1] / "shared" / "data" / "cifar10"
FORWARD_MFLOP = 21.2  # conv 1.77 + 9.44 + 9.44, dense 0.52 (multiply-adds counted as 2)

KERAS = r"""
import json, os, sys, time
import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers
n = int(sys.argv[2])
X_train = np.load(sys.argv[1] + "/x_train.npy")[:n].astype("float32") / 255.
y_train = keras.utils.to_categorical(np.load(sys.argv[1] + "/y_train.npy")[:n])
X_test = np.load(sys.argv[1] + "/x_test.npy").astype("float32") / 255.
model = keras.Sequential([
    layers.Input(shape=(32, 32, 3)),
    layers.Conv2D(32, kernel_size=3, padding='same', use_bias=False),
    layers.BatchNormalization(), layers.ReLU(), layers.MaxPool2D(pool_size=(2,2)),
    layers.Conv2D(64, kernel_size=3, padding='same', use_bias=False),
    layers.BatchNormalization(), layers.ReLU(), layers.MaxPool2D(pool_size=(2,2)),
    layers.Conv2D(128, kernel_size=3, padding='same', use_bias=False),
    layers.BatchNormalization(), layers.ReLU(), layers.MaxPool2D(pool_size=(2,2)),
    layers.Flatten(), layers.Dense(128, activation='relu'), layers.Dense(10, activation='softmax'),
])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
              loss=keras.losses.CategoricalCrossentropy(), metrics=['accuracy'])
times = []
class T(keras.callbacks.Callback):
    def on_epoch_begin(self, e, logs=None): self.t = time.perf_counter()
    def on_epoch_end(self, e, logs=None): times.append(time.perf_counter() - self.t)
model.fit(X_train, y_train, batch_size=128, epochs=2, verbose=0, callbacks=[T()])
densemodel = keras.Model(inputs=model.inputs, outputs=model.layers[-2].output)
densemodel.predict(X_test[:1000], verbose=0)
t = time.perf_counter(); out = densemodel.predict(X_test, verbose=0); t = time.perf_counter() - t
print(json.dumps({"train": n / times[1], "extract": len(X_test) / t, "shape": list(out.shape),
                  "threads": [tf.config.threading.get_intra_op_parallelism_threads(),
                              tf.config.threading.get_inter_op_parallelism_threads()]}))
"""

EAGER = r"""
import json, sys, time
import numpy as np
import torch
from latent_atlas.models import ArticleCNN
n = int(sys.argv[2])
x = torch.from_numpy(np.load(sys.argv[1] + "/x_train.npy")[:n]).permute(0, 3, 1, 2).float() / 255
y = torch.from_numpy(np.load(sys.argv[1] + "/y_train.npy")[:n])
xt = torch.from_numpy(np.load(sys.argv[1] + "/x_test.npy")).permute(0, 3, 1, 2).float() / 255
torch.manual_seed(0)
model = ArticleCNN((32, 32, 3), 10)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()
times = []
for epoch in range(2):
    t = time.perf_counter()
    model.train()
    perm = torch.randperm(n)
    for i in range(0, n, 128):
        idx = perm[i:i + 128]
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    times.append(time.perf_counter() - t)
model.eval()
with torch.no_grad():
    model(xt[:1000])
    t = time.perf_counter()
    feats = []
    for i in range(0, len(xt), 32):  # the dense layer's output, batches of 32 like Keras' predict
        h = xt[i:i + 32]
        for name, layer in model.named_children():
            h = layer(h)
            if name == "dense":
                break
        feats.append(h)
    t = time.perf_counter() - t
print(json.dumps({"train": n / times[1], "extract": len(xt) / t,
                  "threads": torch.get_num_threads()}))
"""

OURS = r"""
import json, sys, time
import numpy as np
from latent_atlas.activations import extract_activations
from latent_atlas.datasets.base import Dataset
from latent_atlas.models import build_model
from latent_atlas.recipes import TrainingConfig
from latent_atlas.training import train_model
n = int(sys.argv[2])
d = sys.argv[1]
ds = Dataset("cifar10", np.load(d + "/x_train.npy")[:n], np.load(d + "/y_train.npy")[:n],
             np.load(d + "/x_test.npy")[:1000], np.load(d + "/y_test.npy")[:1000],
             [str(i) for i in range(10)])
model = build_model("article-cnn", (32, 32, 3), 10, seed=0)
cfg = TrainingConfig(epochs=2, validation="test")
result = train_model(model, ds, cfg, seed=0, progress=False)
x_test = np.load(d + "/x_test.npy")
extract_activations(model, x_test[:1000], "dense", progress=False)
t = time.perf_counter()
acts = extract_activations(model, x_test, "dense", progress=False)
t = time.perf_counter() - t
print(json.dumps({"train": n / result.history[1]["train_seconds"], "extract": len(x_test) / t,
                  "threads": result.threads}))
"""

LOAD = r"""
import numpy as np
a = np.random.default_rng(0).random((1500, 1500), dtype=np.float32)
while True:
    a = (a @ a) / 1500.0
"""


@contextlib.contextmanager
def cores_busy(busy: bool, settle: float = 3.0) -> Iterator[None]:
    """With ``busy``, another process keeps every core busy with matrix products (``LOAD``)
    while the block runs; ``settle`` seconds let it start first."""
    burner = subprocess.Popen([sys.executable, "-c", LOAD]) if busy else None
    if burner is not None:
        time.sleep(settle)
    try:
        yield
    finally:
        if burner is not None:
            burner.kill()


def prepare() -> Path:
    data = OUT / "data"
    if not (data / "x_test.npy").is_file():
        from latent_atlas.datasets import load_dataset

        ds = load_dataset("cifar10", SHARED, progress=False)
        data.mkdir(parents=True, exist_ok=True)
        for name in ("x_train", "y_train", "x_test", "y_test"):
            np.save(data / f"{name}.npy", getattr(ds, name))
    return data


def measure(python: str, code: str, *args: object) -> dict:
    """Run ``code`` with ``python`` and ``args``; the JSON object its last output line holds."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)  # each side keeps its own thread policy
    done = subprocess.run(
        [python, "-c", code, *map(str, args)], capture_output=True, text=True, env=env
    )
    if done.returncode:
        sys.exit(f"failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def clock_ghz() -> float:
    """Effective clock from a large fp32 matrix product on both cores (32 FLOP/cycle/core)."""
    import torch

    torch.set_num_threads(2)
    a = torch.rand(4096, 4096)
    a @ a
    t = time.perf_counter()
    for _ in range(5):
        a @ a
    gflops = 5 * 2 * 4096**3 / (time.perf_counter() - t) / 1e9
    return gflops, gflops / (2 * 32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-images", type=int, default=15_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not TF_PYTHON.is_file():
        sys.exit(f"needs TensorFlow in {TF_PYTHON.parent.parent} (see the docstring)")
    data = prepare()
    gemm, ghz = clock_ghz()
    peak = 2 * 32 * ghz
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, AMD EPYC (Zen 4); "
        f"fp32 matrix product on 2 threads: {gemm:.0f} GFLOP/s, i.e. {ghz:.2f} GHz at 32 "
        f"FLOP/cycle/core → peak {peak:.0f} GFLOP/s; load average {os.getloadavg()[0]:.2f}\n"
    )
    sides = {
        "Keras / TensorFlow (the article's code)": (str(TF_PYTHON), KERAS),
        "plain eager PyTorch": (sys.executable, EAGER),
        "latent-atlas": (sys.executable, OURS),
    }
    rows = []
    raw: dict = {}
    for condition in ("idle", "loaded"):
        runs: dict[str, list[dict]] = {name: [] for name in sides}
        with cores_busy(condition == "loaded"):
            for _ in range(args.rounds):  # interleaved, so drifts in load hit every side alike
                for name, (python, code) in sides.items():
                    runs[name].append(measure(python, code, data, args.train_images))
        for name, measured in runs.items():
            median = {k: float(np.median([m[k] for m in measured])) for k in ("train", "extract")}
            rows.append((condition, name, median))
        raw[condition] = runs
    print(
        "| condition | implementation | training img/s | extraction img/s | training: share of "
        "fp32 peak | vs Keras (train / extract) | vs eager PyTorch (train / extract) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for condition, name, r in rows:
        keras = next(x for c, n, x in rows if c == condition and n.startswith("Keras"))
        eager = next(x for c, n, x in rows if c == condition and n == "plain eager PyTorch")
        share = 3 * FORWARD_MFLOP * 1e6 * r["train"] / (peak * 1e9)
        print(
            f"| {condition} | {name} | {r['train']:.0f} | {r['extract']:.0f} | "
            f"{100 * share:.1f}% | {r['train'] / keras['train']:.2f}× / "
            f"{r['extract'] / keras['extract']:.2f}× | {r['train'] / eager['train']:.2f}× / "
            f"{r['extract'] / eager['extract']:.2f}× |"
        )
    print(
        f"\nMedians of {args.rounds} interleaved rounds; {args.train_images:,} training images "
        f"(one warm-up epoch, one timed), 10,000 test images; load average at the end "
        f"{os.getloadavg()[0]:.2f}. Every round (training/extraction img/s):\n"
    )
    for condition, runs in raw.items():
        for name, measured in runs.items():
            values = ", ".join(f"{m['train']:.0f}/{m['extract']:.0f}" for m in measured)
            print(f"- {condition}, {name}: {values}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "last.json").write_text(json.dumps({"rows": rows, "raw": raw}, indent=1))


if __name__ == "__main__":
    main()
