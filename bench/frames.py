"""Where and when the article's network learns: layer and epoch sweeps of the CIFAR-10 test set.

    # the two runs (about 15 and 25 minutes of training on 2 cores, then the maps of each frame)
    latent-atlas run --dataset cifar10 --data-dir ../shared/data/cifar10 --recipe article \\
        --layers pixels,relu1,pool1,relu2,pool2,relu3,pool3,dense,output \\
        --snapshots 0,1,2,5,10,best --snapshot-layers pool3,dense \\
        --methods pca,tsne,umap --out bench/out/frames-cifar-article
    (the same with --recipe improved --snapshots 0,1,2,5,10,20,30,best, --out ...-improved)

    python bench/frames.py align bench/out/frames-cifar-article   # aligned against independent
    python bench/frames.py report bench/out/frames-cifar-article bench/out/frames-cifar-improved

``align`` refits every frame of the run's two chains (the layer sweep of the trained network
and the dense layer's epochs) twice in one process, interleaved so both meet the same load: on
its own (as without a sweep) and aligned to the previous frame (as ``run`` does). It reports,
per map, the mean disparity between consecutive frames as drawn (both standardised, no
rotation; latent_atlas.align.disparity) and scipy's rotation-free Procrustes disparity, each
frame's trustworthiness, and the seconds, into bench/out/frames-align.json.

``report`` prints Markdown for bench/RESULTS.md: the snapshots' cost against the training's, the
frames tables, the CKA of consecutive frames, and the article's claims per frame (the class
nearest to ship and to automobile, animals against vehicles; bench/article_claims.py).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
OUT = Path(__file__).resolve().parent / "out"


def chains(run) -> list[list[str]]:
    """The run's two chains of frames: layers of the trained model, and dense over epochs."""
    names = run.space_names
    layer_chain = [n for n in names if "-epoch" not in n]
    snaps = [n for n in names if n.startswith("dense-epoch")]
    return [layer_chain, [*sorted(snaps, key=lambda n: int(n.rsplit("epoch", 1)[1])), "dense"]]


def align(run_dir: Path) -> None:
    from latent_atlas.align import disparity, procrustes_disparity, procrustes_onto, start_from
    from latent_atlas.metrics import trustworthiness
    from latent_atlas.reducers import get_reducer
    from latent_atlas.runs import RunDir
    from latent_atlas.sampling import seeded_sample

    run = RunDir.open(run_dir)
    results: dict[str, dict] = {}
    for chain in chains(run):
        for method in ("pca", "tsne", "umap"):
            before: dict[str, np.ndarray] = {}
            rows = []
            for name in chain:
                x = np.asarray(run.space(name).load_latent().features)
                t0 = time.perf_counter()
                own = get_reducer(method, random_state=run.seed).fit_transform(x)
                t1 = time.perf_counter()
                reducer = get_reducer(method, random_state=run.seed)
                if "aligned" in before:
                    start_from(reducer, before["aligned"])
                aligned = reducer.fit_transform(x)
                if "aligned" in before:
                    aligned = procrustes_onto(aligned, before["aligned"])
                t2 = time.perf_counter()
                sample = seeded_sample(len(x), 10_000, run.seed)
                row = {
                    "frame": name,
                    "seconds_independent": t1 - t0,
                    "seconds_aligned": t2 - t1,
                    "trust_independent": trustworthiness(x[sample], own[sample], k=10),
                    "trust_aligned": trustworthiness(x[sample], aligned[sample], k=10),
                }
                if before:
                    row["disparity_independent"] = disparity(before["own"], own)
                    row["disparity_aligned"] = disparity(before["aligned"], aligned)
                    row["procrustes_independent"] = procrustes_disparity(before["own"], own)
                    row["procrustes_aligned"] = procrustes_disparity(before["aligned"], aligned)
                rows.append(row)
                before = {"own": own, "aligned": aligned}
                print(method, json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                          for k, v in row.items()}), flush=True)  # fmt: skip
            results[f"{chain[0]}..{chain[-1]}:{method}"] = {"chain": chain, "rows": rows}
    out = OUT / "frames-align.json"
    out.write_text(json.dumps({"run": str(run_dir), "results": results}, indent=1))
    print(f"written {out}")


def _mean(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return float(np.mean(values)) if values else float("nan")


def align_table() -> None:
    data = json.loads((OUT / "frames-align.json").read_text())
    print(
        "| chain | map | disparity independent | aligned | ratio | Procrustes ind. | aligned "
        "| trust ind. | aligned | worst frame Δtrust | seconds ind. | aligned | ratio |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in data["results"].items():
        chain, method = name.rsplit(":", 1)
        rows = result["rows"]
        di, da = _mean(rows, "disparity_independent"), _mean(rows, "disparity_aligned")
        si, sa = (
            sum(r["seconds_independent"] for r in rows),
            sum(r["seconds_aligned"] for r in rows),
        )
        worst = min(r["trust_aligned"] - r["trust_independent"] for r in rows)
        print(f"| {chain} ({len(rows)} frames) | {method} | {di:.4f} | {da:.4f} | {da / di:.3f} "
              f"| {_mean(rows, 'procrustes_independent'):.4f} "
              f"| {_mean(rows, 'procrustes_aligned'):.4f} "
              f"| {_mean(rows, 'trust_independent'):.4f} | {_mean(rows, 'trust_aligned'):.4f} "
              f"| {worst:+.4f} | {si:.1f} | {sa:.1f} | {sa / si:.2f} |")  # fmt: skip


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def report(run_dirs: list[Path]) -> None:
    from article_claims import claims
    from latent_atlas.runs import RunDir

    for run_dir in run_dirs:
        run = RunDir.open(run_dir)
        t, snaps = run.training or {}, run.manifest.get("snapshots") or {}
        spent = sum(float(v) for v in (snaps.get("seconds") or {}).values())
        print(f"### {run_dir.name}\n")
        print(f"test accuracy {t.get('test_accuracy', float('nan')):.4f}, best epoch "
              f"{t.get('best_epoch')} of {t.get('epochs_run')}; "
              f"training {t.get('seconds', 0):.0f} s, "
              f"snapshots (epochs {snaps.get('epochs')}, layers pool3 and dense) {spent:.1f} s = "
              f"{100 * spent / max(t.get('seconds', 1), 1e-9):.1f}% of training\n")  # fmt: skip
        rows = _rows(run_dir / "frames.csv")
        cka = np.load(run_dir / "cka.npy")
        names = [r["space"] for r in rows]
        print(
            "| frame | dims | active | 5-NN | probe | silhouette | trust t-SNE | trust UMAP "
            "| CKA to previous | nearest to ship | nearest to automobile | animal–animal "
            "| animal–vehicle | animals vs vehicles silhouette |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|")
        for r in rows:
            prev = next((p for p in rows if p["frame"] == r["previous"]), None)
            c = cka[names.index(r["space"]), names.index(prev["space"])] if prev else float("nan")
            latent = run.space(r["space"]).load_latent()
            k = claims(np.asarray(latent.features, dtype=np.float32), latent.labels)
            print(f"| {r['frame']} | {r['dims']} | {r['active_units']} | {r['knn_accuracy']} "
                  f"| {r['linear_probe']} | {r['silhouette']} | {r['trust_tsne']} "
                  f"| {r['trust_umap']} | {c:.3f} | {k['nearest_to_ship']} "
                  f"| {k['nearest_to_automobile']} | {k['animal_animal']:.3f} "
                  f"| {k['animal_vehicle']:.3f} | {k['two_group_silhouette']:.3f} |")  # fmt: skip
        print()


def main(argv: list[str]) -> None:
    if argv[:1] == ["align"]:
        align(Path(argv[1]))
        align_table()
    elif argv[:1] == ["align-table"]:
        align_table()
    elif argv[:1] == ["report"]:
        report([Path(a) for a in argv[1:]])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
