"""Running the runners on a model's cases into a :class:`parity.record.ModelRun`, with no judging: the
outputs, and once per model the determinism, batch-invariance, golden, preprocessing and post-processing
runs."""
from __future__ import annotations

import time
from typing import Mapping

import numpy as np

from .cases import batch_digest, golden_specs
from .config import Cases, GateConfig, baseline_of
from .record import GoldenRun, ModelRun, PostprocessRecord
from .runners import Runner, RunnerError
from .subject import ModelUnderTest


def collect_model(mut: ModelUnderTest, runners: Mapping[str, Runner], cfg: GateConfig, cases: Cases,
                  golden: Mapping | None = None, extra_runs: bool = True) -> ModelRun:
    """Run every runner on ``cases`` and, with ``extra_runs``, the post-processing on them; in an
    unsharded run or shard 1 (``cfg.runs_once_per_model``) also the determinism, batch-invariance,
    golden and preprocessing runs.  No judging here."""
    run = ModelRun(mut.subject, list(cases.labels), cases.normalised, {}, baseline=baseline_of(runners))
    x = mut.inputs(cases.waveforms)
    for name, runner in runners.items():
        runner.activate(mut.probe, mut.outputs)
        res = runner.run(x, cfg.batch_size)
        run.outputs[name] = res.outputs
        run.runner_info[name] = res.info
        run.timings[name] = {"seconds": res.seconds, "ms_per_case": res.ms_per_case}
    t0 = time.perf_counter()
    run.reference = cases.reference(mut.feature_frontend)
    run.timings["librosa_reference"] = {"seconds": round(time.perf_counter() - t0, 3)}
    if not extra_runs:
        return run
    if not cfg.runs_once_per_model:
        _collect_postprocessing(mut, runners, x, run)
        return run
    first = x[: min(cfg.batch_size, len(cases.specs))]  # the run's first batch (shard 1 starts with it)
    run.batch_n = int(first.shape[0])
    k = min(cfg.invariance_cases, run.batch_n)
    golden_cases = None
    if golden:
        golden_cases = Cases.from_specs(golden_specs(golden["n"], golden["seed"]))
        if batch_digest(golden_cases.waveforms) != golden["input_sha256"]:
            raise RunnerError("the golden inputs regenerated here differ from those the build used "
                              "(synthesis or numpy changed); rebuild the release")
        run.golden = GoldenRun(dict(golden), list(golden_cases.labels), {})
    for name, runner in runners.items():
        runner.activate(mut.probe, mut.outputs)
        run.repeat[name] = runner.infer(first)
        alone = [runner.infer(x[i:i + 1]) for i in range(k)]
        run.alone[name] = {key: np.concatenate([a[key] for a in alone]) for key in mut.outputs}
        if golden_cases is not None:
            run.golden.outputs[name] = runner.infer(golden_cases.waveforms)[mut.subject.logits_name]
    engines: dict[str, tuple[str, Runner]] = {}
    for n, r in runners.items():  # the same JS engine gives the same windows: once per engine
        if "preprocess" in r.capabilities:
            engines.setdefault(r.js_engine or n, (n, r))
    preprocessing = dict(engines.values())
    inp = mut.contract.input
    if preprocessing and inp.kind == "waveform" and inp.normalization.kind == "rms":
        from ser_export.ortsession import cpu_session

        from .preprocessing import collect_preprocessing

        session = cpu_session(str(mut.probe), threads=cfg.threads)
        norm = inp.normalization
        run.preprocessing = collect_preprocessing(preprocessing, session, {
            "sample_rate": inp.sample_rate, "input_length": inp.n_samples,
            "normalization": {"rms_level_db": norm.rms_level_db, "min_rms": norm.min_rms}})
    _collect_postprocessing(mut, runners, x, run)
    return run


def _collect_postprocessing(mut: "ModelUnderTest", runners: Mapping[str, Runner], x: np.ndarray,
                            run: ModelRun) -> None:
    posters = {n: r for n, r in runners.items() if "postprocess" in r.capabilities}  # each: its own onnxruntime
    if posters and "postprocessing" in mut.meta and mut.subject.features_name:
        run.postprocessing = collect_postprocessing(mut, posters, x, run.outputs[run.baseline or next(iter(runners))])


def collect_postprocessing(mut: "ModelUnderTest", runners: Mapping[str, Runner], x: np.ndarray,
                           outputs: Mapping[str, np.ndarray]) -> dict[str, PostprocessRecord]:
    """The cases through Python's post-processing and each runner's JS one, from the same logits and
    log-mel (the baseline's), on every runner that has it.  The Silero file is the release's (beside the model,
    its checksum the metadata's) or the silero-vad package's."""
    from ser_export.errors import SerExportError
    from ser_export.postprocess import decide, postprocessing_of
    from ser_export.vad import VoiceActivity

    try:
        pp = postprocessing_of(mut.meta)
        vad = VoiceActivity(pp.vad, near=mut.path)  # the release's copy if it is the one named, else the wheel's
    except SerExportError as exc:
        raise RunnerError(f"{mut.arch}: post-processing: {exc}") from None
    sr = mut.contract.input.sample_rate
    logits, logmel = outputs[mut.subject.logits_name], outputs[mut.subject.features_name]
    frames = vad.frame_probabilities(x, sr)
    threshold = pp.vad.stream_contract().decisions["output"].threshold  # the VAD contract's decision (the gate's)
    py = decide(frames, logits, logmel, pp)
    out = {}
    for name, runner in runners.items():
        js = runner.postprocess(x, logits, logmel, sr, pp.to_dict(), vad.path)
        out[name] = PostprocessRecord(
            js_frames=np.asarray(js["frames"], np.float32), py_frames=frames,
            js_probabilities=np.asarray(js["probabilities"], np.float64), py_probabilities=py.probabilities,
            js_ood=np.asarray(js["oodScore"], np.float64), py_ood=py.ood_score,
            js_speech=np.asarray(js["speech"], bool), py_speech=py.speech,
            js_uncertain=np.asarray(js["uncertain"], bool), py_uncertain=py.uncertain,
            vad_threshold=threshold, ood_threshold=pp.ood.threshold,
            min_probability=pp.confidence.min_probability, js_ms=float(js.get("ms", 0.0)))
    return out
