"""Render ``MODEL_CARD.md`` from the manifest (so the card never disagrees with it)."""
from __future__ import annotations


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
        f"{c['normalization']['rms_level_db']} dB (RMS 1); clips with RMS below "
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
            f"batch {tr['config']['batch_size']}, seed {tr['config']['seed']}.",
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
