"""Render ``MODEL_CARD.md`` from the manifest (so the card never disagrees with it)."""
from __future__ import annotations

from ..contract import rms_target


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


#: Skipped files listed one by one in the card (the manifest lists more).
CARD_LISTED_SKIPS = 20


def _files_lines(info: dict) -> list[str]:
    """A real corpus's file counts and its skipped files with their reasons (nothing for synthetic data)."""
    if "files" not in info:
        return []
    by_reason = ", ".join(f"{n} {reason}" for reason, n in info["skipped_by_reason"].items()) or "none"
    lines = [f"  - directory `{info['root']}`: {info['used']} of {info['files']} files used; "
             f"skipped {info['skipped_total']}: {by_reason}."]
    for item in info["skipped"][:CARD_LISTED_SKIPS]:
        detail = f" ({item['detail']})" if item["detail"] else ""
        lines.append(f"  - skipped `{item['file']}`: {item['reason']}{detail}")
    rest = info["skipped_total"] - min(len(info["skipped"]), CARD_LISTED_SKIPS)
    if rest > 0:
        lines.append(f"  - ... and {rest} more skipped files (listed in `manifest.json`, up to "
                     f"{len(info['skipped'])} of them).")
    return lines


UNSEEN_TITLE = "What the models say about inputs they never saw"


def unseen_inputs_section(manifest: dict, level: str = "##", images: str = "") -> list[str]:
    """The section on voice activity, calibration and "uncertain" (also in the docs,
    ``docs_blocks.page("unseen")``), from the manifest.

    ``images``: prefix of the plots' paths (the release folder, for a page outside it).
    """
    models = {a: m for a, m in manifest["models"].items() if "postprocessing" in m}
    if not models:
        return []
    first = next(iter(models.values()))["postprocessing"]
    vad, vad_file = first["vad"], manifest.get("vad", {})
    ev0 = first["evaluation"]
    lines = [
        f"{level} {UNSEEN_TITLE}",
        "",
        f"Every window passes four checks before an emotion is reported (the same in `predict`, the JS",
        f"module and the demo page; the parity gate checks that Python and JavaScript agree):",
        "",
        f"1. **Voice activity**: Silero VAD (`{vad_file.get('file', vad['file'])}`, silero-vad "
        f"{vad_file.get('version', '?')}, licence {vad_file.get('license', 'MIT')}) scores every 32 ms frame of the",
        f"   window at {vad['sample_rate']} Hz (the window at {vad['gain_db']:g} dB, resampled); a window with fewer "
        f"than {_pct(vad['min_speech_fraction'])}",
        f"   of its frames at speech probability {vad['threshold']:g} or more is \"no speech\" and is not classified.",
        "2. **Calibration**: probabilities are `softmax(logits / T)`, the temperature `T` fitted on the",
        "   validation speakers (temperature scaling, Guo et al. 2017); the ONNX `output` stays raw logits.",
        f"3. **Out-of-distribution**: `{first['ood']['score']}` ({first['ood']['statistics']}, a Mahalanobis",
        f"   distance to the training speech); above the {first['ood']['quantile']:g} quantile of the validation",
        "   speakers' scores the window is \"uncertain\" and no emotion is shown.",
        f"4. **Low confidence**: a calibrated top probability below {first['confidence']['min_probability']:.3f} (the "
        f"{first['confidence']['quantile']:g} quantile",
        "   of the validation speakers') is \"uncertain\" too: the model is unsure among the emotions it knows.",
        "",
        f"Figures from the build (test = held-out test speakers; OOD set v{ev0['ood_set']['version']}: "
        f"{ev0['ood_set']['non_speech']['n']} non-speech windows (noise of three colours, tones, chords, music,",
        f"hum, clicks, door slams, fans) and {ev0['ood_set']['speech_like']['n']} speech-like ones (voices outside "
        "the synthetic range, whisper, reversed speech, babble), never trained on):",
        "",
        "| model | T | ECE test before -> after | VAD speech, test | test uncertain | accuracy: all / classified "
        "| non-speech: no speech or uncertain | non-speech: confident emotion | speech-like: no speech or uncertain "
        "| OOD AUROC all / non-speech / speech-like |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arch, m in models.items():
        ev = m["postprocessing"]["evaluation"]
        h, ns, sl = ev["held_out_test"], ev["ood_set"]["non_speech"], ev["ood_set"]["speech_like"]
        auc = ev["ood_auroc"]["held_out_vs"][ev["ood_auroc"]["chosen"]]
        lines.append(
            f"| {arch} | {ev['temperature']:.3f} | {ev['ece_test']['before']:.3f} -> {ev['ece_test']['after']:.3f} "
            f"| {_pct(h['speech_rate'])} | {_pct(h['uncertain_rate_of_speech'])} | {_pct(h['accuracy_all'])} / "
            f"{_pct(h['accuracy_classified'])} | {_pct(ns['no_speech_or_uncertain_rate'])} "
            f"| {_pct(ns['confident_emotion_rate'])} | {_pct(sl['no_speech_or_uncertain_rate'])} "
            f"| {auc['all']:.3f} / {auc['non_speech']:.3f} / {auc['speech_like']:.3f} |")
    lines += ["", "The VAD's no-speech rate on the OOD set's non-speech part, and AUROC of the scores the build "
              "measured (held-out test speakers vs the OOD set; the chosen one first):", ""]
    for arch, m in models.items():
        ev = m["postprocessing"]["evaluation"]
        chosen = ev["ood_auroc"]["chosen"]
        others = "; ".join(f"`{k}` {v['all']:.3f}" for k, v in ev["ood_auroc"]["held_out_vs"].items() if k != chosen)
        lines.append(f"- {arch}: VAD no speech on non-speech {_pct(ev['ood_set']['non_speech']['no_speech_rate'])}; "
                     f"AUROC `{chosen}` {ev['ood_auroc']['held_out_vs'][chosen]['all']:.3f}; {others}.")
        if m.get("plots", {}).get("reliability"):
            lines.append(f"  ![reliability diagram]({images}{m['plots']['reliability']})")
    lines.append("")
    return lines


def variants_section(manifest: dict, level: str = "##") -> list[str]:
    """The variants table: per model and variant, size, backends, and the figures against the float parent
    (all from the manifest the build wrote)."""
    rows = []
    for arch, m in manifest["models"].items():
        for name, v in (m.get("variants") or {}).items():
            held = v["vs_parent"].get("heldout") or {}
            cases = v["vs_parent"].get("gate_cases") or {}
            left_out = sorted(set(manifest["build"]["target_backends"]) - set(v["declared_backends"]))
            why = "; ".join(f"{b}: {f['message']}" for b in left_out
                            for f in v["backends"].get(b, {}).get("findings", [])[:1])
            rows.append(
                f"| `{v['file']}` ({arch} {name}) | {v['bytes'] / 1e6:.2f} MB ({100 * v['bytes'] / m['bytes']:.0f} %) | "
                f"{', '.join(v['declared_backends'])}{f' (not {why})' if why else ''} | "
                + (f"{_pct(held['top1_agreement'])} | {_pct(held['accuracy'])} (parent {_pct(held['parent_accuracy'])}) | "
                   if held else "- | - | ")
                + (f"{cases['max_abs_logit_diff']:.3g} | " if cases.get("max_abs_logit_diff") is not None else "- | ")
                + f"{v['tolerance_class']} |")
    if not rows:
        return []
    return [f"{level} Variants: smaller downloads", "",
            "Each model also ships with its weights stored in float16 or int8 (fp16, int8: float32 "
            "arithmetic), and with its classifier's arithmetic in int8 (int8s: int8 weights and uint8 "
            "activations, calibrated on training-speaker clips). Its log-mel front-end stays "
            "float32. The gate judges each variant two ways: against itself on every runtime it declares, "
            "with the same bounds as its float parent, and against the float parent under the tolerance "
            "class of `tolerances.json`. Run one with `python -m ser_export predict FILE --variant fp16`.", "",
            "| file | size (of parent) | backends | held-out top-1 agreement with parent | held-out accuracy | "
            "max logit change on gate cases | class |", "|---|---|---|---|---|---|---|", *rows, ""]


def render_model_card(manifest: dict) -> str:
    c = manifest["contract"]
    labels = manifest["labels"]
    data = manifest["training_data"]
    lines = [
        "# Model card: VoiceEmotionCnn (ser_export release)",
        "",
        "Speech-emotion recognition CNNs with the log-mel front-end inside the ONNX graph,",
        "built by `python -m ser_export build` and checked before release.",
        "",
    ]
    if data.get("synthetic"):
        lines += [
            "> **Trained on synthetic speech.** These models were trained and evaluated only on",
            "> the synthetic emotional-speech corpus that ser_export generates offline (a",
            "> source-filter voice whose prosody follows per-emotion profiles). Their accuracy",
            "> says how well they learn those synthetic cues; it says nothing about human",
            "> speech. Rebuild with `--data ravdess=PATH ...` to train on real corpora.",
            "",
        ]
    lines += [
        "## Input and output",
        "",
        f"- Input `{c['input_name']}`: float32 `{c['input_shape']}`, mono, {c['sample_rate']} Hz, "
        f"{c['n_samples']} samples ({c['duration_s']} s), RMS-normalised to "
        f"{c['normalization']['rms_level_db']} dB (RMS {rms_target(c['normalization']['rms_level_db']):g}); clips with RMS below "
        f"{c['normalization']['min_rms']:g} are silence and must be refused, not normalised.",
        f"- Output `{c['output_name']}`: float32 `{c['output_shape']}` logits; softmax gives probabilities.",
        f"- Labels, in logit order ({manifest['label_set']}): " + ", ".join(f"`{x}`" for x in labels) + ".",
        "- The labels, sample rate, input length, normalisation and front-end parameters are also",
        "  in each ONNX file's metadata (`metadata_props`).",
        "",
        "## Training data",
        "",
        f"- Corpus: {data['name']}.",
    ]
    for corpus, info in sorted(data.get("corpora", {}).items()):
        spk = info["speakers"]
        clips = {s: sum(v.values()) for s, v in info["clips"].items()}
        lines.append(f"- `{corpus}`: speakers train {len(spk['train'])}, validation {len(spk['val'])} "
                     f"({', '.join(spk['val'])}), test {len(spk['test'])} ({', '.join(spk['test'])}); "
                     f"clips train {clips.get('train', 0)}, validation {clips.get('val', 0)}, "
                     f"test {clips.get('test', 0)}.")
        lines += _files_lines(info)
    if data.get("labels_without_data"):
        lines.append("- **No clips of " + ", ".join(f"`{x}`" for x in data["labels_without_data"])
                     + "** in the data: the model was trained without them and will (almost) never predict them.")
    lines += [
        "- Split by speaker: validation speakers drive early stopping; test speakers are used",
        "  only for the accuracy below (no speaker appears in two splits).",
        f"- Training clips are augmented ({data.get('augmentation', 'none')}).",
        "",
    ]
    for arch, m in manifest["models"].items():
        test = m["held_out"]["test"]
        tr = m["training"]
        lines += [
            f"## `{m['file']}` ({arch}: {m['description']})",
            "",
            f"- {m['bytes'] / 1e6:.1f} MB, opset {m['opset']}, sha256 `{m['sha256']}`.",
            f"- Front-end in the graph: `{m['frontend']['implementation']}` STFT "
            f"({'four-step FFT' if m['frontend']['implementation'] == 'fft' else 'Conv2d DFT basis'}), "
            f"n_fft {m['frontend']['n_fft']}, hop {m['frontend']['hop_length']}, "
            f"pad_mode `{m['frontend']['pad_mode']}`, {m['frontend']['n_mels']} Slaney mel bands, "
            f"dB relative to each clip's maximum, floor -{m['frontend']['top_db']:g} dB.",
            f"- Held-out-speaker test accuracy **{_pct(test['accuracy'])}** (macro F1 "
            f"{test['macro_f1']:.3f}, {test['n']} clips; chance {_pct(1 / len(labels))}); "
            f"validation accuracy {_pct(m['held_out']['val']['accuracy'])}.",
            f"- Training: {tr['epochs_run']} of {tr['config']['epochs']} epochs, weights of epoch "
            f"{tr['best_epoch']} (lowest validation loss), AdamW lr {tr['config']['lr']:g}, "
            f"batch {tr['config']['batch_size']}, seed {tr['config']['seed']}"
            + (f", dropout rates ramped up from 0 over the first {tr['config']['dropout_ramp']:.0%} of the steps "
               f"(curriculum dropout)" if tr['config'].get('dropout_ramp') else "") + ".",
            "",
            "| label | precision | recall | F1 | support |",
            "|---|---|---|---|---|",
        ]
        for label, r in test["per_class"].items():
            lines.append(f"| {label} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['support']} |")
        lines += ["", f"![confusion matrix]({m['plots']['confusion']})",
                  f"![training curves]({m['plots']['curves']})", ""]
        lines += ["Backends (operator lint against onnxruntime-web's tables):", ""]
        for backend, b in m["backends"].items():
            note = "; ".join(f["message"] for f in b["findings"]) or "no findings"
            lines.append(f"- {backend}: {'compatible' if b['compatible'] else 'NOT compatible'} ({note})")
        rc = m["release_check"]
        lines += [
            "",
            f"Release check on {rc['cases']} test clips: onnxruntime-python vs PyTorch max |logit| "
            f"difference {rc['onnxruntime_vs_pytorch']['max_abs_logit_diff']:.2e}, top-1 agreement "
            f"{_pct(rc['onnxruntime_vs_pytorch']['top1_agreement'])}; front-end vs librosa (float64) "
            f"max |error| {rc['pytorch_logmel_vs_librosa_f64']['max_abs_all_bins']:.2e} dB over all bins, "
            f"{rc['pytorch_logmel_vs_librosa_f64']['max_abs_above_floor']:.2e} dB more than "
            f"{rc['pytorch_logmel_vs_librosa_f64']['floor_margin_db']:g} dB above the floor.",
            "",
        ]
    lines += variants_section(manifest)
    lines += unseen_inputs_section(manifest)
    lines += [
        "## Limitations",
        "",
        ("- Synthetic training data (see above); emotions are acted prototypes, and one clip is 2.1 s."
         if data.get("synthetic") else
         "- Acted emotions from the corpora above; one clip is 2.1 s; accuracy on other speakers,"
         " languages and microphones is unknown."),
        "- AlexNet keeps the original's heavy dropout (0.7 and 0.6 before batch norm); its",
        "  batch-norm statistics are recalibrated before each validation and its first convolution",
        "  gets a data-dependent initialisation (its input is dB, far from zero mean); it trails ResNet18.",
        "- Accuracy figures come from a handful of held-out speakers and vary with the split.",
        "",
    ]
    return "\n".join(lines)
