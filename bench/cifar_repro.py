"""Reproduce the article's CIFAR-10 training on real data, over several seeds.

    python bench/cifar_repro.py article --seeds 0 1 2    # the article's recipe
    python bench/cifar_repro.py improved --seeds 0        # augmentation + cosine schedule
    python bench/cifar_repro.py report                    # Markdown table of what was run

The article's recipe: the article's CNN, Adam 1e-3, batch 128, up to 50 epochs, early stopping with
patience 7 on the validation loss, best weights restored — validating on the test set as the
article does (``validation="test"``). The improved recipe keeps the architecture and adds random
crops and flips and a cosine learning-rate schedule, and validates on a held-out 10% of the
training set (the test set is only scored at the end). Each run writes a JSON file and the
trained checkpoint into ``bench/out/cifar_repro/``; ``report`` summarises them (files from
before the recipe was renamed, ``seed-seed*.json`` with recipe ``"seed"``, count as the
article recipe's).
Needs ../shared/data/cifar10.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
OUT = Path(__file__).resolve().parent / "out" / "cifar_repro"
KERAS_OUT = OUT.parent / "keras_repro"  # written by bench/keras_repro.py
OLD_RECIPES = {"seed": "article"}  # recipe names in files written before the rename
RECIPES = {
    "article": {"epochs": 50, "validation": "test"},
    "improved": {"epochs": 40, "validation": "split", "augment": True, "lr_schedule": "cosine"},
}


def train(recipe: str, seed: int) -> dict:
    from latent_atlas.datasets import load_dataset
    from latent_atlas.models import build_model, save_checkpoint
    from latent_atlas.recipes import TrainingConfig
    from latent_atlas.training import train_model

    ds = load_dataset("cifar10", SHARED, progress=False)
    model = build_model("article-cnn", ds.image_shape, ds.num_classes, seed=seed)
    cfg = TrainingConfig(**RECIPES[recipe])
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    result = train_model(model, ds, cfg, seed=seed, progress=False)
    record = {
        "recipe": recipe,
        "seed": seed,
        "config": RECIPES[recipe],
        "test_accuracy": result.test_accuracy,
        "test_loss": result.test_loss,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "seconds": time.perf_counter() - t0,
        "seconds_per_epoch": statistics.median(h["seconds"] for h in result.history),
        "train_images_per_second": result.train_images_per_second,
        "threads": result.threads,
        "load_average": [load0, os.getloadavg()[0]],
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "history": result.history,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        OUT / f"{recipe}-seed{seed}.pt", model, "article-cnn", extra={"class_names": ds.class_names}
    )
    (OUT / f"{recipe}-seed{seed}.json").write_text(json.dumps(record, indent=1))
    print(summary(f"{recipe} seed {seed}", record), flush=True)
    return record


def summary(name: str, record: dict) -> str:
    """One line for a finished training run (ours or the Keras listing's)."""
    return (
        f"{name}: test accuracy {record['test_accuracy']:.4f}, loss {record['test_loss']:.4f}, "
        f"best epoch {record['best_epoch']}/{record['epochs_run']}, "
        f"{record['seconds_per_epoch']:.1f} s/epoch"
    )


def load_runs() -> list[dict]:
    """Every run record in ``OUT``, with old recipe names (``seed-seed0.json``) mapped to new."""
    runs = []
    for p in sorted(OUT.glob("*.json")):
        r = json.loads(p.read_text())
        r["recipe"] = OLD_RECIPES.get(r["recipe"], r["recipe"])
        runs.append(r)
    return runs


def report() -> None:
    runs = load_runs()
    print(
        "| recipe | seed | test accuracy | test loss | best epoch | epochs run | s/epoch | "
        "train img/s | load average (start, end) | date |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in runs:
        print(
            f"| {r['recipe']} | {r['seed']} | {r['test_accuracy']:.4f} | {r['test_loss']:.4f} | "
            f"{r['best_epoch']} | {r['epochs_run']} | {r['seconds_per_epoch']:.1f} | "
            f"{r['train_images_per_second']:.0f} | {r['load_average'][0]:.2f}, "
            f"{r['load_average'][1]:.2f} | {r['date']} |"
        )
    print()
    for recipe in RECIPES:
        accs = [r["test_accuracy"] for r in runs if r["recipe"] == recipe]
        losses = [r["test_loss"] for r in runs if r["recipe"] == recipe]
        if len(accs) > 1:
            print(
                f"- {recipe}: test accuracy {statistics.mean(accs):.4f} ± "
                f"{statistics.stdev(accs):.4f} (mean ± sd over {len(accs)} seeds; min "
                f"{min(accs):.4f}), loss {statistics.mean(losses):.4f} ± "
                f"{statistics.stdev(losses):.4f}"
            )
        elif accs:
            print(f"- {recipe}: test accuracy {accs[0]:.4f}, loss {losses[0]:.4f} (one seed)")
    keras = [json.loads(p.read_text()) for p in sorted(KERAS_OUT.glob("seed*.json"))]
    ours = [r for r in runs if r["recipe"] == "article"]
    if len(keras) > 1 and len(ours) > 1:
        compare_with_keras(ours, keras)


def compare_with_keras(ours: list[dict], keras: list[dict]) -> None:
    """Our article recipe against the article's Keras listing over seeds: means, Welch's 95%
    interval of the difference, and the mean learning curves epoch by epoch."""
    from scipy import stats

    a = [r["test_accuracy"] for r in ours]
    b = [r["test_accuracy"] for r in keras]
    test = stats.ttest_ind(a, b, equal_var=False)
    ci = test.confidence_interval(0.95)
    print(
        f"- article recipe against the article's Keras listing ({len(b)} seeds, "
        "bench/keras_repro.py): "
        f"{statistics.mean(a):.4f} ± {statistics.stdev(a):.4f} vs {statistics.mean(b):.4f} ± "
        f"{statistics.stdev(b):.4f}; difference {statistics.mean(a) - statistics.mean(b):+.4f} "
        f"(Welch 95% interval {ci.low:+.4f} to {ci.high:+.4f}, p = {test.pvalue:.2f}); best "
        f"epochs {sorted(r['best_epoch'] for r in ours)} vs "
        f"{sorted(r['best_epoch'] for r in keras)}"
    )
    epochs = min(min(len(r["history"]) for r in runs) for runs in (ours, keras))
    print()
    print("| epoch | " + " | ".join(str(e) for e in range(1, epochs + 1)) + " |")
    print("|---|" + "---:|" * epochs)
    for name, runs in (("latent-atlas", ours), ("Keras", keras)):
        for key in ("accuracy", "val_accuracy"):
            means = [statistics.mean(r["history"][e][key] for r in runs) for e in range(epochs)]
            print(f"| {name} {key} | " + " | ".join(f"{m:.3f}" for m in means) + " |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=[*RECIPES, "report"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    if args.what == "report":
        report()
        return
    for seed in args.seeds:
        train(args.what, seed)


if __name__ == "__main__":
    main()
