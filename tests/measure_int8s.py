"""How the static-int8 (``int8s``) variant's design was chosen: agreement with the float parent per calibration
method, weight granularity, calibration clips and float-kept nodes, measured on a release.

``python -m tests.measure_int8s [--release saved_models] [--grid full|final]`` rebuilds (or reads from the
feature cache) the release's training and test splits exactly as its build did
(:func:`ser_export.build.build_data` with the manifest's profile, seed and front-end), quantises each model's
classifier per design (:func:`ser_export.export.calibrate.quantize_classifier`), and prints one row per design
and model: top-1 agreement with the parent and accuracy on the test split's recorded clips (the held-out
speakers the build judges variants on), the largest logit change, the share of the classifier's
multiply-accumulates that run in int8, and the file size.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np


def _full_logits(model, x: np.ndarray) -> np.ndarray:
    from ser_export.export.variants import run_batches, session

    return run_batches(session(model.SerializeToString()), x)


def main(argv: list[str] | None = None) -> int:
    from ser_export import numenv

    numenv.reexec_if_needed()
    numenv.activate()
    p = argparse.ArgumentParser(prog="python -m tests.measure_int8s", description=__doc__.splitlines()[0])
    p.add_argument("--release", type=Path, default=Path("saved_models"))
    p.add_argument("--cache-dir", type=Path, default=Path(".ser_export_cache"))
    p.add_argument("--grid", choices=["full", "final"], default="full")
    p.add_argument("--archs", default="alexnet,resnet18")
    p.add_argument("--gate-cases", type=int, default=200, help="the gate's cases drawn (seed: the build's)")
    args = p.parse_args(argv)

    from ser_export import contract
    from ser_export.export.calibrate import StaticInt8Spec, calibration_clips, int8_macs, quantize_classifier
    from ser_export.export.model_file import open_model
    from ser_export.export.variants import classifier_model, run_batches, session
    from ser_export.variants_step import release_build_data

    manifest, data = release_build_data(args.release, args.cache_dir)
    train, test = data.dataset.splits["train"], data.dataset.splits["test"]
    held = set(test.speakers) | set(data.dataset.splits["val"].speakers)
    keep = ~test.augmented
    x_test, y_test = test.features[keep], test.targets[keep]
    if args.grid == "full":
        dense_only = ("Conv", "Gemm", "MatMul", "Relu", "MaxPool", "Flatten")
        designs = [StaticInt8Spec(method=m, keep_float=kf)
                   for m, kf in itertools.product(("minmax", "percentile", "entropy"), ((), ("first_conv",)))]
        designs += [StaticInt8Spec(keep_float=("first_conv",), augmented=False),
                    StaticInt8Spec(keep_float=("first_conv", "last_gemm")),
                    StaticInt8Spec(keep_float=("first_conv",), clips=64),
                    StaticInt8Spec(keep_float=("first_conv",), clips=1024),
                    StaticInt8Spec(keep_float=("first_conv",), per_channel=False),
                    StaticInt8Spec(keep_float=("first_conv",), ops=dense_only)]
    else:
        from ser_export.export.variants import INT8S_SPEC

        designs = [INT8S_SPEC]
    from parity.cases import draw_cases
    from parity.config import Cases
    from ser_export.data.heldout import synthetic_heldout

    seed = int(manifest.raw["build"]["seed"])
    gate = Cases.from_specs(draw_cases(args.gate_cases, seed)).waveforms
    heldout = synthetic_heldout(manifest.raw["training_data"], manifest.labels, seed)
    print(f"test split: {len(y_test)} recorded clips of {len(set(test.speakers))} held-out speakers; training split "
          f"{int((~train.augmented).sum())} recorded clips", flush=True)
    print("| model | method | weights | clips | kept float | test split: top-1 agreement | accuracy (parent) | "
          "max abs logit change | gate's held-out clips: agreement, max change | gate cases: agreement, "
          "max change | int8 MACs | MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for arch in args.archs.split(","):
        parent = open_model(args.release / manifest.raw["models"][arch]["file"]).proto
        ref = run_batches(session(classifier_model(parent, contract.FEATURES_NAME, contract.OUTPUT_NAME)), x_test)
        parent_acc = float((ref.argmax(1) == y_test).mean())
        ref_gate, ref_held = _full_logits(parent, gate), _full_logits(parent, heldout[0])
        for spec in designs:
            clips = calibration_clips(train.features, train.speakers, train.augmented, held, spec.clips,
                                      spec.augmented)
            q = quantize_classifier(parent, contract.FEATURES_NAME, contract.OUTPUT_NAME, clips, spec)
            got = run_batches(session(classifier_model(q, contract.FEATURES_NAME, contract.OUTPUT_NAME)), x_test)
            agree = float((got.argmax(1) == ref.argmax(1)).mean())
            acc = float((got.argmax(1) == y_test).mean())
            qm, tm = int8_macs(q, contract.FEATURES_NAME)
            g, h = _full_logits(q, gate), _full_logits(q, heldout[0])
            figs = [f"{100 * float((a.argmax(1) == b.argmax(1)).mean()):.1f} %, {np.abs(a - b).max():.2f}"
                    for a, b in ((h, ref_held), (g, ref_gate))]
            print(f"| {arch} | {spec.method} | {'per-channel' if spec.per_channel else 'per-tensor'} | "
                  f"{clips.shape[0]}{' +aug' if spec.augmented else ''} | {', '.join(spec.keep_float) or '-'}"
                  f"{'' if 'Add' in spec.ops else ' (no Add/pool)'} | {100 * agree:.1f} % | "
                  f"{100 * acc:.1f} % ({100 * parent_acc:.1f} %) | {np.abs(got - ref).max():.2f} | "
                  f"{figs[0]} | {figs[1]} | {100 * qm / max(tm, 1):.1f} % | {len(q.SerializeToString()) / 1e6:.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
