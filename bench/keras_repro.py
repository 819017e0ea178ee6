"""The article's own Keras listing on this data, over several seeds: the reference for cifar_repro.

    python bench/keras_repro.py run --seeds 0 1 2     # trains with bench/out/tf-venv's TensorFlow
    python bench/keras_repro.py report                # Markdown table of what was run

The model, optimiser, loss, batch size, epochs and callbacks are the article's listing
unchanged, apart from the checkpoint name (Keras 3 wants ``.weights.h5``), a seed
(``keras.utils.set_random_seed``) so that runs differ only by it, and a callback that records
the history. As the data README of ../shared/data/seed-latents says of the reference runs, the
test set is scored with the best weights (those ``ModelCheckpoint`` saved). TensorFlow is not a
dependency of latent-atlas: the script runs in its own environment, ``bench/out/tf-venv``
(``python3 -m venv bench/out/tf-venv && bench/out/tf-venv/bin/pip install tensorflow-cpu==2.21.0``).
The data are the same arrays ``bench/cifar_speed.py`` prepares from ../shared/data/cifar10.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "keras_repro"

KERAS = r"""
import json, sys, time
import numpy as np
from tensorflow import keras
from tensorflow.keras import layers

data, seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
keras.utils.set_random_seed(seed)
X_train = np.load(data + "/x_train.npy").astype('float32')/255.
X_test = np.load(data + "/x_test.npy").astype('float32')/255.
y_train = keras.utils.to_categorical(np.load(data + "/y_train.npy"))
y_test = keras.utils.to_categorical(np.load(data + "/y_test.npy"))

model = keras.Sequential([
    layers.Conv2D(32, kernel_size=3, padding='same', use_bias=False, input_shape=(32,32,3)),
    layers.BatchNormalization(),
    layers.ReLU(),
    layers.MaxPool2D(pool_size=(2,2)),
    layers.Conv2D(64, kernel_size=3, padding='same', use_bias=False),
    layers.BatchNormalization(),
    layers.ReLU(),
    layers.MaxPool2D(pool_size=(2,2)),
    layers.Conv2D(128, kernel_size=3, padding='same', use_bias=False),
    layers.BatchNormalization(),
    layers.ReLU(),
    layers.MaxPool2D(pool_size=(2,2)),
    layers.Flatten(),
    layers.Dense(128, activation='relu'),
    layers.Dense(10, activation='softmax')
])
model.compile(
    optimizer=keras.optimizers.Adam(learning_rate=1e-3),
    loss=keras.losses.CategoricalCrossentropy(),
    metrics=['accuracy']
)
times = []
class T(keras.callbacks.Callback):
    def on_epoch_begin(self, e, logs=None): self.t = time.perf_counter()
    def on_epoch_end(self, e, logs=None): times.append(time.perf_counter() - self.t)
ckpt = out + ".weights.h5"
hist = model.fit(
    X_train, y_train, batch_size=128, epochs=50,
    validation_data = (X_test, y_test),
    callbacks = [
        keras.callbacks.ModelCheckpoint(ckpt, save_best_only=True, save_weights_only=True),
        keras.callbacks.EarlyStopping(patience=7),
        T(),
    ],
    verbose=2,
)
final_loss, final_acc = model.evaluate(X_test, y_test, verbose=0)
model.load_weights(ckpt)
loss, acc = model.evaluate(X_test, y_test, verbose=0)
h = hist.history
history = [{"epoch": i + 1, "loss": h["loss"][i], "accuracy": h["accuracy"][i],
            "val_loss": h["val_loss"][i], "val_accuracy": h["val_accuracy"][i],
            "seconds": times[i]} for i in range(len(h["loss"]))]
best = min(range(len(history)), key=lambda i: history[i]["val_loss"]) + 1
print(json.dumps({"test_accuracy": acc, "test_loss": loss, "final_accuracy": final_acc,
                  "final_loss": final_loss, "best_epoch": best, "epochs_run": len(history),
                  "history": history}))
"""


def run(seed: int) -> dict:
    sys.path.insert(0, str(HERE))
    from cifar_repro import summary
    from cifar_speed import TF_PYTHON, measure, prepare  # the speed benchmark's arrays

    data = prepare()
    OUT.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    record = measure(str(TF_PYTHON), KERAS, data, seed, OUT / f"seed{seed}")
    record.update(
        seed=seed,
        seconds=time.perf_counter() - t0,
        seconds_per_epoch=statistics.median(h["seconds"] for h in record["history"]),
        load_average=[load0, os.getloadavg()[0]],
        date=time.strftime("%Y-%m-%d %H:%M"),
        machine=f"{platform.machine()}, {os.cpu_count()} cores",
    )
    (OUT / f"seed{seed}.json").write_text(json.dumps(record, indent=1))
    print(summary(f"keras seed {seed}", record), flush=True)
    return record


def report() -> str:
    records = [json.loads(p.read_text()) for p in sorted(OUT.glob("seed*.json"))]
    lines = [
        "| code | seed | test accuracy | test loss | best epoch | epochs run | s/epoch | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| Keras (article listing) | {r['seed']} | {r['test_accuracy']:.4f} | "
            f"{r['test_loss']:.4f} | {r['best_epoch']} | {r['epochs_run']} | "
            f"{r['seconds_per_epoch']:.1f} | {r['load_average'][0]:.1f} |"
        )
    if len(records) > 1:
        acc = [r["test_accuracy"] for r in records]
        loss = [r["test_loss"] for r in records]
        lines.append(
            f"| **mean ± sd** | {len(records)} seeds | **{statistics.mean(acc):.4f} ± "
            f"{statistics.stdev(acc):.4f}** | {statistics.mean(loss):.3f} ± "
            f"{statistics.stdev(loss):.3f} | | | | |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["run", "report"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if args.what == "run":
        for seed in args.seeds:
            run(seed)
    print(report())


if __name__ == "__main__":
    main()
