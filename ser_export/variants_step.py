"""``python -m ser_export variants RELEASE``: remake a release's reduced-precision variants from its committed
float models, without retraining.

The float models, plots and VAD stay byte for byte as they are; the build's data stage
(:func:`ser_export.build.build_data`, with the manifest's profile, seed, label set and front-end, so the
training split and its calibration clips are the build's) gives the calibration clips and the test split,
the variants are made and judged exactly as the build's variant step makes and judges them, the release
gate checks them, and the manifest (its variants and tolerances) and the model card are rewritten together
through :class:`ser_export.export.release.ReleaseWriter` (atomically; nothing is replaced on a failure).
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Mapping, Sequence

from . import contract, tolerances
from .contract import FrontEnd
from .errors import SerExportError
from .io import sha256_file
from .manifest import Manifest

#: The model card's file name in a release.
from .manifest import MODEL_CARD


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _augment_copies(training_data: Mapping) -> int:
    """The augmented copies per clip the build made (its ``training_data.augmentation`` sentence)."""
    desc = str(training_data.get("augmentation", "none"))
    if desc == "none":
        return 0
    try:
        return int(desc.split()[0])
    except ValueError:
        raise SerExportError(f"training_data.augmentation {desc!r} does not say how many copies") from None


def build_options(manifest: Manifest, out_dir: Path, cache_dir: Path | None, data: Mapping[str, str],
                  progress: bool = False):
    """The :class:`ser_export.build.BuildOptions` of the build that made ``manifest`` (what its data stage needs)."""
    from .build import BuildOptions

    raw = manifest.raw
    build, td = raw["build"], raw["training_data"]
    if not td.get("synthetic") and not data:
        raise SerExportError("the release was trained on corpora on disk: pass them again with --data NAME=PATH "
                             "(the calibration clips are its training speakers' clips)")
    return BuildOptions(out_dir=out_dir, archs=tuple(raw["models"]), profile=build["profile"],
                        seed=int(build["seed"]), data=dict(data), label_set=manifest.label_set,
                        opset=int(build["opset"]), pad_mode=build["pad_mode"], frontend=build["frontend"],
                        backends=tuple(build["target_backends"]), augment_copies=_augment_copies(td),
                        cache_dir=cache_dir, progress=progress)


def release_build_data(release_dir: Path, cache_dir: Path | None, data: Mapping[str, str] | None = None):
    """``(manifest, BuildData)``: the release's manifest and its build's data stage, rebuilt (or read from the
    feature cache under ``cache_dir``)."""
    from .build import build_data

    manifest = Manifest.read(release_dir)
    opts = build_options(manifest, Path(release_dir), cache_dir, data or {})
    frontend = FrontEnd(pad_mode=opts.pad_mode, implementation=opts.frontend)
    return manifest, build_data(opts, contract.labels_for(opts.label_set), frontend)


def with_variants_section(card: str | None, manifest: Mapping) -> str:
    """``card`` (a release's model card) with its variants section rendered anew from ``manifest``
    (:func:`ser_export.export.model_card.variants_section`), the rest of it as it was; the whole card rendered
    from ``manifest`` when there is no card or it has no variants section yet."""
    from .export.model_card import render_model_card, variants_section

    section = variants_section(dict(manifest))
    head = section[0] if section else None
    lines = card.split("\n") if card is not None else []
    if head is None or head not in lines:
        return render_model_card(dict(manifest))
    start = lines.index(head)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[:start] + section + lines[end:])


def remake_variants(release_dir: Path, cache_dir: Path | None = Path(".ser_export_cache"),
                    data: Mapping[str, str] | None = None, runtimes: Sequence[str] | None = None,
                    examples: int | None = None, log=_log) -> dict:
    """Remake, judge and gate every variant of the release in ``release_dir`` from its float models, and rewrite
    the release (the float models, plots and VAD byte for byte as they are); returns the manifest written.

    ``runtimes`` and ``examples``: the release gate's (default: the build's, :data:`ser_export.build.VERIFY_EXAMPLES`
    of its profile, every runtime).  A float model whose bytes are not the manifest's sha256, a variant the gate
    or the judge refuses, or a manifest the reader would refuse leaves the release as it was."""
    import json

    from parity.release import judge_variants, run_release_gate

    from .build import VERIFY_EXAMPLES, stage_variants, variant_calibration
    from .export.model_file import open_model
    from .export.optables import load_tables
    from .export.release import ReleaseWriter
    from .export.variants import VARIANTS, make_variants, variant_file
    from .manifest import MANIFEST

    release_dir = Path(release_dir)
    manifest, built = release_build_data(release_dir, cache_dir, data)
    raw = json.loads(json.dumps(manifest.raw))
    backends, seed = raw["build"]["target_backends"], int(raw["build"]["seed"])
    calibration = variant_calibration(built.dataset, VARIANTS)
    variant_files = {variant_file(e.file, n) for e in manifest.models.values() for n in (e.raw.get("variants") or {})}
    variant_files |= {variant_file(e.file, n) for e in manifest.models.values() for n in VARIANTS}
    tables = load_tables()
    with ReleaseWriter(release_dir) as writer:
        for name in manifest.files:  # every other file of the release, as it is
            if name not in (MANIFEST, MODEL_CARD) and name not in variant_files:
                writer.add(name, (release_dir / name).read_bytes())
        staged, staged_variants, records = {}, {}, {}
        for arch, entry in manifest.models.items():
            parent = open_model(writer.staged_path(entry.file), folder=release_dir)
            if parent.sha256 != entry.sha256:
                raise SerExportError(f"{release_dir / entry.file}: sha256 {parent.sha256[:12]}... is not the "
                                     f"manifest's {entry.sha256[:12]}...: its variants would not be of the release")
            staged[arch] = writer.staged_path(entry.file)
            made = make_variants(parent.proto, entry.sha256, entry.file, arch, VARIANTS, backends, tables,
                                 calibration)
            vs_parent = judge_variants(parent.proto, made, arch, built.dataset.splits["test"])
            records[arch], staged_variants[arch] = stage_variants(arch, made, vs_parent, writer)
        gate = run_release_gate(staged, list(manifest.labels), {a: dict(e.golden) for a, e in manifest.models.items()},
                                runtimes, examples or VERIFY_EXAMPLES[raw["build"]["profile"]], seed, None, log,
                                staged_variants)
        for arch, recs in records.items():
            raw["models"][arch]["variants"] = {name: r.after_gate(gate[f"{arch}.{name}"]).to_dict()
                                               for name, r in recs.items()}
        raw["tolerances"] = tolerances.load()
        raw = json.loads(json.dumps(raw))
        writer.add(MODEL_CARD, with_variants_section((release_dir / MODEL_CARD).read_text(encoding="utf-8")
                                                     if MODEL_CARD in manifest.files else None, raw).encode())
        writer.commit(raw, check=lambda m: Manifest.from_dict(m, where=f"{release_dir / MANIFEST} (about to be "
                                                                        f"written)"))
    log(f"variants of {release_dir} remade: {', '.join(VARIANTS)} of {', '.join(manifest.models)}")
    return Manifest.read(release_dir).raw
