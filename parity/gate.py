"""The release gate, ``python -m ser_export verify saved_models/``: the manifest, the checksums, then
every model and its variants (:func:`verify_release`).

The gate is one module per job, on floors; each imports only from the floors below it:

- :mod:`parity.config`: :class:`~parity.config.GateConfig`, :class:`~parity.config.Cases`, the runners;
- :mod:`parity.subject`: the model under test, its contract and its manifest checks;
- :mod:`parity.collect`: the runners' outputs as data (:class:`parity.record.ModelRun`), no judging;
- :mod:`parity.pipeline`: run, judge (:mod:`parity.judge`), shrink and localise one model; finish a run;
- the jobs: :mod:`parity.variants`, :mod:`parity.foreign` (``verify model.onnx --contract c.toml``),
  :mod:`parity.rejudge` (a saved run judged again), :mod:`parity.release` (the build's gate on its
  staged files) and :mod:`parity.merge` (the shards of a run as one verdict);
- :mod:`parity.vad_stream`: the release's voice-activity model through the stream stages;
- this module on top.

The verdict (exit 0, 1 or 2) is :attr:`parity.report.GateReport.exit_code`'s alone.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ser_export.export.model_file import ReleaseFileError, open_model
from ser_export.manifest import Manifest, ManifestError

from .config import Cases, GateConfig, make_runners
from .pipeline import check_model, finish
from .report import GateReport, ModelReport
from .runners import RunnerError
from .stream_check import StreamCheck
from .vad_stream import check_release_vad
from .variants import HeldOut, check_variant, unchecked_variants


def verify_release(release_dir: Path, cfg: GateConfig, streams: StreamCheck | None = None) -> GateReport:
    """Check every model of a release directory against its manifest, then its voice-activity model through the
    stream stages (:mod:`parity.vad_stream`; ``streams``: which streams, default :class:`StreamCheck`'s)."""
    t0 = time.perf_counter()
    report = GateReport(release_dir=str(release_dir), config=cfg.to_dict())
    try:
        manifest = Manifest.read(release_dir)
    except ManifestError as exc:
        report.error = str(exc)
        return report
    cases = Cases.from_specs(cfg.draw())
    runners = make_runners(cfg)
    heldout: HeldOut | None = None
    try:
        for arch, model_entry in manifest.models.items():
            entry = model_entry.raw
            path = Path(release_dir) / model_entry.file
            mr = ModelReport(arch=arch, file=model_entry.file, sha256_expected=model_entry.sha256)
            report.models.append(mr)
            try:
                model = open_model(path, folder=release_dir)
            except ReleaseFileError as exc:
                mr.error = str(exc)
                report.models += unchecked_variants(arch, entry, "its parent cannot be read")
                continue
            mr.sha256_actual = model.sha256
            if not mr.checksum_ok:  # another file than the one released: nothing to run
                report.models += unchecked_variants(arch, entry, "its parent is not the file the manifest names")
                continue
            try:
                check_model(model, arch, runners, cfg, cases, expected=entry, report=mr)
            except (RunnerError, ReleaseFileError) as exc:
                mr.error = str(exc)
            report.cases_checked += len(cases.specs)
            parent_logits: dict = {}
            for name, declared in (entry.get("variants") or {}).items():
                if heldout is None:
                    heldout = HeldOut.of(manifest) if cfg.runs_once_per_model else HeldOut(
                        None, None, f"the held-out clips are judged in shard 1/{cfg.shard.count}")
                    if "onnxruntime-python" not in runners:
                        runners["onnxruntime-python"] = make_runners(dataclasses.replace(
                            cfg, runtimes=("onnxruntime-python",)))["onnxruntime-python"]
                vr = ModelReport(arch=f"{arch}.{name}", file=declared["file"], sha256_expected=declared["sha256"])
                report.models.append(vr)
                try:
                    variant = open_model(Path(release_dir) / declared["file"], folder=release_dir)
                    vr.sha256_actual = variant.sha256
                    if not vr.checksum_ok:
                        continue
                    check_variant(variant, arch, name, declared, model, entry, runners, cfg, cases, heldout, vr,
                                  parent_logits)
                except (RunnerError, ReleaseFileError) as exc:
                    vr.error = str(exc)
                report.cases_checked += len(cases.specs)
        if manifest.raw.get("vad") is not None:  # the voice-activity model the release ships: its stream stages
            report.models.append(check_release_vad(release_dir, manifest, runners, cfg, streams or StreamCheck(
                seed=cfg.seed)))
        report.runners = {name: r.info() for name, r in runners.items()}
    finally:
        finish(report, runners, cfg, t0)
    return report
