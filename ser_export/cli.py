"""Command line: ``python -m ser_export {build,predict,verify,lint,setup-js}`` (also ``ser-export``)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from . import contract, docs_blocks
from .errors import SerExportError


def _add_build(sub) -> None:
    from .export.optables import BACKENDS
    from .models import ARCHITECTURES

    p = sub.add_parser("build", help="train both models, export, lint, check and write a release",
                       description="Train, export (ONNX + onnxsim), lint for onnxruntime-web, check "
                                   "PyTorch vs onnxruntime and write saved_models/ with a manifest.")
    p.add_argument("--out", type=Path, default=Path("saved_models"), help="release directory (default: saved_models)")
    p.add_argument("--arch", action="append", choices=sorted(ARCHITECTURES),
                   help="architecture to build (repeatable; default: both)")
    p.add_argument("--quick", action="store_true", help="tiny corpus and 1-2 epochs (CI and tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", action="append", default=[], metavar="CORPUS=PATH",
                   help="train on a real corpus: ravdess, emodb, tess or jl (repeatable; default: the "
                        "embedded synthetic corpus)")
    p.add_argument("--label-set", default=contract.DEFAULT_LABEL_SET, choices=sorted(contract.LABEL_SETS))
    p.add_argument("--opset", type=int, default=contract.DEFAULT_OPSET)
    p.add_argument("--pad-mode", default="constant", choices=["constant", "reflect"])
    p.add_argument("--frontend", default="fft", choices=["fft", "conv2d"],
                   help="STFT implementation in the graph (default fft: faster, smaller; conv2d: the reference)")
    p.add_argument("--backend", action="append", choices=list(BACKENDS),
                   help="onnxruntime-web backend the release must run on (repeatable; default: all)")
    p.add_argument("--verify-examples", type=int, default=None,
                   help="parity cases per model checked before the release is written (default 48; --quick: 8)")
    p.add_argument("--verify-runtimes", action="append", metavar="A,B",
                   help="runtimes of that check (comma-separated or repeated; default: those of verify)")
    p.add_argument("--augment-copies", type=int, default=1)
    p.add_argument("--workers", type=int, default=2, help="processes for synthesis and augmentation")
    p.add_argument("--cache-dir", type=Path, default=Path(".ser_export_cache"))
    p.add_argument("--no-cache", action="store_true", help="do not read or write cached features")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--allow-unpinned", action="store_true",
                   help="write a release although the installed torch/onnx/onnxsim/... are not the versions "
                        "constraints/release.txt pins (the manifest records the differences)")


def _run_variants(args) -> int:
    from . import numenv
    from .data.corpora import parse_data_args
    from .variants_step import remake_variants

    numenv.activate()
    manifest = remake_variants(args.release_dir, args.cache_dir, parse_data_args(args.data),
                               _runtimes(args.verify_runtimes), args.verify_examples)
    for arch, m in manifest["models"].items():
        for name, v in m["variants"].items():
            held = v["vs_parent"].get("heldout")
            print(f"{v['file']}: {v['bytes'] / 1e6:.2f} MB, sha256 {v['sha256'][:16]}..."
                  + (f", held-out top-1 agreement {100 * held['top1_agreement']:.1f} %" if held else ""))
    return 0


def _runtimes(items: list[str] | None) -> tuple[str, ...] | None:
    """``["a,b", "c"]`` -> ``("a", "b", "c")``; ``None`` when none were given."""
    names = tuple(r for item in (items or []) for r in item.split(",") if r)
    return names or None


def _run_build(args) -> int:
    from .build import BuildOptions, run_build
    from . import numenv
    from .distributed import Distributed
    from .data.corpora import parse_data_args
    from .export.optables import BACKENDS

    opts = BuildOptions(
        out_dir=args.out, archs=tuple(args.arch or ("alexnet", "resnet18")),
        profile="quick" if args.quick else "default", seed=args.seed, data=parse_data_args(args.data),
        label_set=args.label_set, opset=args.opset, pad_mode=args.pad_mode, frontend=args.frontend,
        backends=tuple(args.backend or BACKENDS), verify_examples=args.verify_examples,
        verify_runtimes=_runtimes(args.verify_runtimes), augment_copies=args.augment_copies, workers=args.workers,
        cache_dir=None if args.no_cache else args.cache_dir, progress=not args.no_progress,
        allow_unpinned=args.allow_unpinned)
    dist = Distributed.from_env()  # launched by torchrun: one of several training processes
    numenv.activate()  # the declared thread counts, before any parallel work (the process group's too)
    dist.start()
    try:
        manifest = run_build(opts, dist)
    finally:
        dist.stop()
    if manifest is None:  # not rank 0: it trained; rank 0 wrote the release
        return 0
    if dist.enabled:
        _log_stderr(f"trained on {dist.world_size} processes ({dist.backend})")
    for arch, m in manifest["models"].items():
        print(f"{m['file']}: {m['bytes'] / 1e6:.1f} MB, test accuracy {m['held_out']['test']['accuracy']:.3f}, "
              f"sha256 {m['sha256'][:16]}...")
    return 0


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _run_predict(args) -> int:
    from .predict import format_prediction, predict_file

    pred = predict_file(args.file, args.model, variant=args.variant)
    if args.json:
        print(json.dumps({"file": str(args.file), **pred.to_dict()}, indent=2))
    else:
        print(format_prediction(str(args.file), pred))
    return 0


def _run_lint(args) -> int:
    from .export.lint import lint_model
    from .export.optables import BACKENDS

    from .export.model_file import open_model

    if not Path(args.model).exists() and not Path(args.model).is_symlink():
        raise SerExportError(f"{args.model}: no such model file")
    model = open_model(args.model).proto
    backends = args.backend or list(BACKENDS)
    report = lint_model(model, backends)
    print(json.dumps({"opset": report.opset, "ops": report.ops, "backends": report.backends_dict()}, indent=2))
    return 0 if not report.errors() else 1


def _run_setup_js(args) -> int:
    from .jsenv import HARNESS, setup_harness

    tool = setup_harness(force=args.force)
    print(f"js_harness ready in {HARNESS.root} (npm packages in {HARNESS.install}; node {tool.version} from "
          f"{tool.source}: {tool.node})")
    return 0


def _run_doctor(args) -> int:
    from .doctor import DEFAULT_REQUIRED, diagnose

    try:
        diagnosis = diagnose(required=_runtimes(args.runtimes) or DEFAULT_REQUIRED)
    except ValueError as exc:
        raise SerExportError(str(exc)) from None
    for line in diagnosis.lines():
        print(line, flush=True)
    return diagnosis.exit_code


def _run_verify(args) -> int:
    from parity.config import DEFAULT_RUNTIMES, GateConfig
    from parity.gate import verify_release
    from parity.rejudge import rejudge

    from . import tolerances

    save_outputs, shard = args.save_outputs, None
    try:
        tol = tolerances.load_overrides(args.tolerances) if args.tolerances else None
        if args.shard:
            from parity.merge import runs_folder_name
            from parity.shard import Shard

            shard = Shard.parse(args.shard)
            if not args.report or args.rejudge or args.save_outputs:
                raise ValueError(f"--shard {args.shard}: needs --report FILE (its run is saved beside it, in "
                                 f"FILE.run, for merge-reports) and takes neither --save-outputs nor --rejudge")
            save_outputs = args.report.parent / runs_folder_name(args.report)
        cfg = GateConfig(runtimes=_runtimes(args.runtimes) or DEFAULT_RUNTIMES, examples=args.examples,
                         seed=args.seed, threads=args.threads, batch_size=args.batch_size,
                         timeout_s=args.timeout, shrink=not args.no_shrink,
                         counterexample_dir=args.counterexamples, tolerances=tol, save_outputs=save_outputs,
                         shard=shard)
    except ValueError as exc:
        raise SerExportError(str(exc)) from None
    if args.rejudge:  # the saved run's own tolerances, with --tolerances laid over them
        report = rejudge(args.rejudge, args.tolerances)
    elif args.contract or args.release_dir.suffix == ".onnx":
        from parity.foreign import verify_model

        from .stream_contract import read_contract

        if not args.contract:
            raise SerExportError(f"{args.release_dir}: a single model needs --contract FILE (TOML or JSON; "
                                 f"see `python -m ser_export contract --schema`)")
        contract = read_contract(args.contract)  # version 1, or 2 (a streaming model)
        if not args.runtimes:
            cfg = dataclasses.replace(cfg, runtimes=tuple(r for r in DEFAULT_RUNTIMES if r != "pytorch"))
        report = verify_model(args.release_dir, contract, cfg, torch_factory=args.torch,
                              torch_weights=args.torch_weights,
                              streams=_stream_check(args))
    else:
        if args.torch:
            raise SerExportError("--torch is for a single model with --contract (a release rebuilds its own)")
        report = verify_release(args.release_dir, cfg, streams=_stream_check(args))  # the release's VAD's streams
    if shard is not None:
        start, stop = shard.bounds(cfg.examples, cfg.batch_size)
        report.shard = {**shard.to_dict(), "cases": [start, stop], "outputs": save_outputs.name}
    return _print_verdict(report, args, "verify")


def _stream_check(args):
    """The stream check --streams, --stream-seconds, --long-seconds and --seed ask for; an option not given keeps
    :class:`parity.stream_check.StreamCheck`'s default (the one place they are set)."""
    from parity.stream_check import StreamCheck

    default = StreamCheck()
    if args.streams is not None and args.streams < 1:
        raise SerExportError(f"--streams {args.streams}: at least 1 stream is needed")
    long_seconds = default.long_seconds if args.long_seconds is None else (args.long_seconds or None)
    try:
        return StreamCheck(default.streams if args.streams is None else args.streams, args.seed,
                           default.seconds if args.stream_seconds is None else _seconds(args.stream_seconds),
                           long_seconds)
    except ValueError as exc:
        raise SerExportError(f"--long-seconds {args.long_seconds:g}: expected seconds > 0 (0: no long stream)"
                             if "long_seconds" in str(exc) else str(exc)) from None


def _seconds(text: str) -> tuple[float, float]:
    """``"1,4"`` -> ``(1.0, 4.0)``; ``"10"`` -> ``(10.0, 10.0)`` (``--stream-seconds``)."""
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or not all(0 < v < 3600 for v in parts) or parts[0] > parts[-1]:
        raise SerExportError(f"--stream-seconds {text!r}: expected MIN,MAX (or one length) in seconds, 0 < MIN <= MAX")
    return parts[0], parts[-1]


def _run_merge_reports(args) -> int:
    from parity.merge import merge_reports

    return _print_verdict(merge_reports(args.reports, args.tolerances), args, "merge-reports")


def _print_verdict(report, args, command: str) -> int:
    """Write the report's JSON and JUnit if asked, print its table and verdict; the gate's exit code."""
    from parity.report import summary_table, write_json, write_junit

    if args.report:
        write_json(report, args.report)
    if args.junit:
        write_junit(report, args.junit)
    for line in summary_table(report) + report.summary_lines():
        print(line)
    verdict = report.verdict.upper()
    shard = f" (shard {report.shard['index']}/{report.shard['count']})" if report.shard else ""
    print(f"{command}: {verdict}{shard}: {sum(m.kind == 'model' for m in report.models)} model(s), "
          f"{report.cases_checked} cases, "
          f"{report.wall_s:.1f} s ({report.cases_checked / max(report.wall_s, 1e-9):.1f} cases/s)")
    line = report.verdict_line()
    if line:  # refused or not checked: one line on stderr, naming the file
        print(f"error: {line}", file=sys.stderr)
    return report.exit_code


def _run_export(args) -> int:
    from .reexport import reexport

    summary = reexport(args.model, args.out, frontend=args.frontend, opset=args.opset, backends=args.backend)
    print(json.dumps(summary, indent=2))
    return 0


def _run_bench(args) -> int:
    from .bench import format_bench, render_markdown, run_bench, write_bench

    if args.markdown:
        try:
            report = json.loads(Path(args.markdown).read_text(encoding="utf-8"))
            sys.stdout.write(render_markdown(report))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SerExportError(f"{args.markdown}: not a bench JSON ({type(exc).__name__}: {exc})") from None
        return 0

    report = run_bench(args.release_dir, threads=tuple(args.threads), repeat=args.repeat, warmup=args.warmup,
                       archs=tuple(args.arch or ("alexnet", "resnet18")), live_seconds=args.live_seconds)
    print(format_bench(report))
    if args.json:
        write_bench(report, args.json)
        print(f"written to {args.json}")
    return 0


def _run_contract(args) -> int:
    from . import stream_contract
    from .model_contract import json_schema

    if args.schema:
        data = stream_contract.json_schema() if args.schema_version == 2 else json_schema()
    else:
        data = stream_contract.read_contract(args.check).to_dict()
    print(json.dumps(data, indent=2))
    return 0


def _run_optable(args) -> int:
    from .export.measured_ops import PATH, read_table, render_markdown

    if args.markdown:
        try:
            table = read_table(args.markdown)
        except ValueError as exc:
            raise SerExportError(str(exc)) from None
        sys.stdout.write(render_markdown(table))
        return 0
    from parity.opmeasure import measure
    from parity.runners import RunnerError

    from .export.measured_ops import COLUMNS

    columns = _runtimes(args.columns) or COLUMNS
    try:
        table = measure(columns, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    except (RunnerError, ValueError) as exc:
        raise SerExportError(f"optable: {exc}") from None
    out = args.out or PATH
    table.save(out)
    bad = sum(1 for cols in table.cells.values() for cell in cols.values() if not cell.ok)
    n = sum(len(cols) for cols in table.cells.values())
    print(f"{out}: {len(table.cases)} cases x {len(columns)} columns, {n - bad} ok, {bad} not ok; {table.version}")
    return 0


def _run_stream_table(args) -> int:
    from parity.config import GateConfig, make_runners
    from parity.runners import RunnerError
    from parity.stream_table import PATH, RUNTIMES, measure, render_markdown

    from . import tolerances
    from .io import atomic_write_text, read_untrusted

    if args.markdown:
        sys.stdout.write(render_markdown(read_untrusted(args.markdown, max_bytes=1 << 20, format="json")))
        return 0
    runners = make_runners(GateConfig(runtimes=_runtimes(args.runtimes) or RUNTIMES))
    try:
        table = measure(runners, tolerances.load())
    except (RunnerError, ValueError) as exc:
        raise SerExportError(f"stream-table: {exc}") from None
    finally:
        for r in runners.values():
            r.deactivate()
    out = args.out or PATH
    atomic_write_text(out, json.dumps(table, indent=2, sort_keys=True) + "\n")
    print(f"{out}: {len(table['rows'])} files x {len(table['runtimes'])} runtimes (silero-vad {table['silero_vad']})")
    return 0


def _run_check_browser(args) -> int:
    import subprocess

    from parity.runners.base import RunnerError
    from parity.runners.node import find_chromium

    from .doctor import chromium_version

    try:
        path = find_chromium()
    except RunnerError as exc:
        raise SerExportError(str(exc)) from None
    try:
        version = chromium_version(path)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SerExportError(f"chromium at {path} does not run: {exc}") from None
    print(f"chromium: {path} ({version})")
    return 0


def _run_demo(args) -> int:
    import subprocess

    from .jsenv import HARNESS_DIR, setup_harness

    tool = setup_harness(quiet=True)
    models = args.models.resolve()
    if not (models / "manifest.json").exists():
        raise SerExportError(f"{models}: no manifest.json (build a release first)")
    cmd = [tool.node, str(HARNESS_DIR / "serve.mjs"), "--port", str(args.port), "--models", str(models)]
    print("serving the demo; open the URL below (Ctrl-C stops it)", flush=True)
    return subprocess.call(cmd, cwd=HARNESS_DIR)


def _run_card(args) -> int:
    from .export.model_card import render_model_card, unseen_inputs_section, variants_section
    from .manifest import Manifest

    manifest = Manifest.read(args.release_dir).raw
    if args.section == "variants":
        lines = variants_section(manifest, level="###")
        if not lines:
            raise SerExportError(f"{args.release_dir}: its models have no variants (built before they existed)")
        print("\n".join(lines).rstrip("\n"))
    elif args.section == "unseen":
        lines = unseen_inputs_section(manifest, level="###", images=f"{args.release_dir.as_posix().rstrip('/')}/")
        if not lines:
            raise SerExportError(f"{args.release_dir}: its models have no post-processing (built before it existed)")
        print("\n".join(lines).rstrip("\n"))
    else:
        print(render_model_card(manifest))
    return 0


def _run_calibration(args) -> int:
    from .uncertainty import extra_takes_calibration

    if args.extra_takes < 1 or args.draws < 1:
        raise SerExportError("--extra-takes and --draws must be at least 1")
    result = extra_takes_calibration(args.release_dir, args.extra_takes, args.draws)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for arch, r in result.items():
        print(f"{arch}: T {r['temperature']:.3f}; {r['n']} windows of the held-out speakers (new takes): accuracy "
              f"{100 * r['accuracy']:.1f} %, ECE {r['ece_before']:.3f} -> {r['ece_after']:.3f} (test split: "
              f"{r['ece_test_split_after']:.3f}); a perfectly calibrated model would show ECE "
              f"{r['noise_floor_here']['median']:.3f} (p90 {r['noise_floor_here']['p90']:.3f}) here and "
              f"{r['noise_floor_test_split']['median']:.3f} (p90 {r['noise_floor_test_split']['p90']:.3f}) on "
              f"{r['noise_floor_test_split']['n']} windows")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="ser_export", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ser_export {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_build(sub)
    from .export.optables import BACKENDS

    p = sub.add_parser("predict", help="print the emotions in an audio file (WAV/FLAC, any rate, any length)")
    p.add_argument("file", type=Path)
    p.add_argument("--model", type=Path, default=None, help="ONNX model (default: saved_models/voice_emotion_cnn.onnx)")
    p.add_argument("--variant", choices=["fp16", "int8", "int8s"], default=None,
                   help="run the model's reduced-precision variant (the file beside it: smaller, judged against "
                        "the float model by the gate)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("lint", help="check an ONNX model against onnxruntime-web's backends")
    p.add_argument("model", type=Path)
    p.add_argument("--backend", action="append", choices=list(BACKENDS))
    p = sub.add_parser("verify", help="the release gate: checksums and parity of every runtime (exit 0/1/2)",
                       description="Re-check each model's sha256 against the manifest and run the parity suite. "
                                   "Exit 0: all passed; 1: a parity failure or checksum mismatch; 2: could not "
                                   "check (no node, harness crashed or timed out, unreadable release).")
    p.add_argument("release_dir", type=Path, nargs="?", default=Path("saved_models"), metavar="RELEASE_OR_MODEL",
                   help="a release folder (with manifest.json), or one .onnx model with --contract")
    p.add_argument("--contract", type=Path, metavar="FILE",
                   help="the model's declared contract (TOML or JSON; `contract --schema` prints its schema)")
    p.add_argument("--torch", metavar="PKG.MODULE:FACTORY",
                   help="a factory returning the nn.Module that gives the contract's outputs (the baseline), or "
                        "a TorchScript file of yours (torch.jit.load), e.g. silero_vad.jit for a streaming model")
    p.add_argument("--torch-weights", type=Path, metavar="FILE",
                   help="state dict for --torch, read safely (torch.load weights_only=True, or .safetensors)")
    p.add_argument("--runtimes", action="append", metavar="A,B",
                   help="runners to use (comma-separated or repeated; default: pytorch, onnxruntime-python, "
                        "onnxruntime-web-wasm, onnxruntime-node)")
    p.add_argument("--examples", type=int, default=200, help="hypothesis cases per model (default 200)")
    p.add_argument("--streams", type=int, default=None,
                   help="a streaming model (version 2 contract), and a release's VAD: short streams to draw, at "
                        "least 1 (default: parity.stream_check.StreamCheck's, as every default below)")
    p.add_argument("--stream-seconds", default=None, metavar="MIN,MAX",
                   help="a streaming model: length range of the short streams in seconds (one number: that length, "
                        "never a whole number of chunks)")
    p.add_argument("--long-seconds", type=float, default=None,
                   help="a streaming model: seconds of the long stream the drift is measured on (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before a silent harness is killed")
    p.add_argument("--report", type=Path, help="write the JSON report here")
    p.add_argument("--junit", type=Path, help="write JUnit XML here")
    p.add_argument("--no-shrink", action="store_true", help="do not shrink failing cases with hypothesis")
    p.add_argument("--counterexamples", type=Path, default=Path("parity-out") / "counterexamples",
                   help="where minimal failing inputs are saved as .npy")
    p.add_argument("--tolerances", type=Path, metavar="FILE",
                   help="tolerances laid over the shipped ones (tolerances.json's layout; name only what changes)")
    p.add_argument("--save-outputs", type=Path, metavar="DIR",
                   help="save every runner's raw outputs here, to judge again later with --rejudge")
    p.add_argument("--rejudge", type=Path, metavar="DIR",
                   help="judge outputs saved with --save-outputs again (under --tolerances); runs no runtime")
    p.add_argument("--batch-size", type=int, default=64, help="cases per runtime call (default 64; a shard is "
                                                              "whole batches)")
    p.add_argument("--shard", metavar="K/N",
                   help="run shard K of N: every shard draws the same cases and keeps its block of whole batches; "
                        "checksums and lint run in every shard, the once-per-model checks (determinism, batch "
                        "invariance, golden logits, JS preprocessing, held-out clips) in shard 1; needs --report "
                        "FILE, and saves its run in FILE.run for merge-reports")
    p = sub.add_parser("merge-reports", help="one verdict from the shards of a gate run (verify --shard K/N)",
                       description="Join the shards' saved runs and judge them once: the same verdict and figures "
                                   "as one unsharded run. Exit 0: passed; 1: a failure in any shard; 2: could not "
                                   "check (a shard missing or given twice, shards of different releases or cases, "
                                   "or a shard that could not check).")
    p.add_argument("reports", type=Path, nargs="+", metavar="SHARD.json",
                   help="the shards' --report files (each with its .run folder beside it)")
    p.add_argument("--report", type=Path, help="write the merged JSON report here")
    p.add_argument("--junit", type=Path, help="write the merged JUnit XML here")
    p.add_argument("--tolerances", type=Path, metavar="FILE",
                   help="tolerances laid over those the shards were judged under")
    p = sub.add_parser("export", help="re-export a release model with another front-end or opset (no retraining)")
    p.add_argument("model", type=Path, help="a ser_export release model (.onnx)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--frontend", choices=["fft", "conv2d"], required=True)
    p.add_argument("--opset", type=int, default=contract.DEFAULT_OPSET)
    p.add_argument("--backend", action="append", choices=list(BACKENDS))
    p = sub.add_parser("bench", help="latency of librosa, each front-end and each model in every runtime")
    p.add_argument("release_dir", type=Path, nargs="?", default=Path("saved_models"))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--arch", action="append", choices=["alexnet", "resnet18"])
    p.add_argument("--json", type=Path, default=Path("parity-out") / "bench.json")
    p.add_argument("--live-seconds", type=float, default=20.0,
                   help="audio seconds of each model's live run in Chromium (ser-export-web's listen(); 0: none)")
    p.add_argument("--markdown", type=Path, metavar="BENCH_JSON", help=f"print BENCH_JSON as the table in {docs_blocks.page('bench')} and exit")
    p = sub.add_parser("demo", help="serve the demo page (pick or record audio, see the emotions) on 127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--models", type=Path, default=Path("saved_models"))
    sub.add_parser("check-browser", help="say whether a Chromium for the browser runners is installed")
    p = sub.add_parser("stream-table", help="every ONNX file of the silero-vad wheel x every runtime vs its "
                                            "TorchScript model (the table of docs/streaming.md)")
    p.add_argument("--runtimes", action="append", metavar="A,B",
                   help="runtimes (default: the table's own, parity.stream_table.RUNTIMES)")
    p.add_argument("--out", type=Path, default=None, help="where to write the JSON (default: parity/contracts/"
                                                          "silero_table.json)")
    p.add_argument("--markdown", type=Path, metavar="TABLE", help="print TABLE (JSON) as the docs' markdown and exit")
    p = sub.add_parser("optable", help="measure the operator suite on every onnxruntime-web backend (the lint's table)",
                       description="Run one small model per operator, variant and opset in onnxruntime-web's wasm "
                                   "backend in Node and in Chromium (wasm, WebGL, WebGPU), compare with "
                                   "onnxruntime-python and write the table the operator lint reports from.")
    p.add_argument("--out", type=Path, default=None,
                   help="where to write the table (default: the package's ser_export/export/measured_ops.json)")
    p.add_argument("--columns", action="append", default=[], metavar="A,B",
                   help="columns to measure (default: wasm-node, wasm, webgl, webgpu)")
    p.add_argument("--markdown", type=Path, metavar="TABLE", help=f"print TABLE as the markdown in {docs_blocks.page('optable')} and exit")
    p = sub.add_parser("contract", help="the model contract that `verify MODEL --contract FILE` reads",
                       description="Print the JSON schema of a contract file (--schema), or check a contract file "
                                   "and print it with every default filled in (--check FILE).")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--schema", action="store_true", help="print the JSON schema")
    p.add_argument("--schema-version", type=int, choices=(1, 2), default=1,
                   help="with --schema: 1, a model with one input; 2, a streaming, stateful model")
    g.add_argument("--check", type=Path, metavar="FILE", help="read FILE; exit 2 with the field named if it is wrong")
    p = sub.add_parser("card", help="print a release's model card (rendered from its manifest), or one section")
    p.add_argument("release_dir", type=Path, nargs="?", default=Path("saved_models"))
    p.add_argument("--section", choices=["unseen", "variants"],
                   help="unseen: what the models say about inputs they never saw; variants: the fp16/int8 table "
                        f"(the blocks in {docs_blocks.page('unseen')} and {docs_blocks.page('variants')})")
    p = sub.add_parser("variants", help="remake a release's reduced-precision variants from its float models "
                                        "(no retraining) and rewrite its manifest and model card",
                       description="Rebuild the release's training and test splits as its build did (or read them "
                                   "from the feature cache), make every variant (fp16, int8, int8s: calibrated on "
                                   "the training speakers' clips) from the float models, judge them against their "
                                   "parents, run the release gate and rewrite the manifest's variants and the model "
                                   "card atomically; the float models stay byte for byte as they are.")
    p.add_argument("release_dir", type=Path, nargs="?", default=Path("saved_models"))
    p.add_argument("--data", action="append", default=[], metavar="CORPUS=PATH",
                   help="the corpora a release trained on corpora on disk was built from (as build's --data)")
    p.add_argument("--cache-dir", type=Path, default=Path(".ser_export_cache"))
    p.add_argument("--verify-examples", type=int, default=None,
                   help="parity cases per model of the release gate (default: the build's, 48; --quick: 8)")
    p.add_argument("--verify-runtimes", action="append", metavar="A,B",
                   help="runtimes of the release gate (comma-separated or repeated; default: those of verify)")
    p = sub.add_parser("calibration", help="ECE of a synthetic release on more takes of its held-out speakers, "
                                           "and the ECE's sampling-noise floor")
    p.add_argument("release_dir", type=Path, nargs="?", default=Path("saved_models"))
    p.add_argument("--extra-takes", type=int, default=48, help="takes per emotion and test speaker (default 48)")
    p.add_argument("--draws", type=int, default=500, help="simulated draws for the noise floor (default 500)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("setup-js", help="install the JS harness's npm packages (npm ci with a node found here)",
                       description="Install the JS harness's npm packages from its lock file: in a clone, into "
                                   "js_harness/ (npm ci); from the wheel, its runtime dependencies (npm ci "
                                   "--omit=dev) into $SER_EXPORT_JS_DIR or "
                                   "${XDG_CACHE_HOME:-~/.cache}/ser_export/js/<hash of the lock file>. The first "
                                   "use of a node or Chromium runtime does it too.")
    p.add_argument("--force", action="store_true")
    p = sub.add_parser("doctor", help="say which runtimes can run here, and why not (exit 0: every required one)",
                       description="One line per runtime: whether it can run here and why not (the Python "
                                   "requirements, node, the JS harness's install with onnxruntime-web/-node, "
                                   "Chromium's path and version, WebGL and WebGPU as Chromium reports them). "
                                   "Exit 0 when every required runtime can run, 2 otherwise.")
    p.add_argument("--runtimes", action="append", metavar="A,B",
                   help="runtimes that must run (comma-separated or repeated; default: pytorch, onnxruntime-python, "
                        "onnxruntime-web-wasm, onnxruntime-node, chromium-wasm); every runtime is listed")
    return parser


COMMANDS = {"build": _run_build, "predict": _run_predict, "lint": _run_lint, "setup-js": _run_setup_js,
            "verify": _run_verify, "bench": _run_bench, "export": _run_export, "demo": _run_demo,
            "check-browser": _run_check_browser, "optable": _run_optable, "contract": _run_contract,
            "card": _run_card, "calibration": _run_calibration, "merge-reports": _run_merge_reports,
            "doctor": _run_doctor, "variants": _run_variants, "stream-table": _run_stream_table}


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] in (["build"], ["variants"]):
        # training and feature extraction run under the declared numeric environment, set before torch
        # and NumPy are imported: the command re-executes itself with it (ser_export/numenv.py)
        from . import numenv

        numenv.reexec_if_needed()
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SerExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
