"""The variant rules as data: tolerance classes, the judge's comparison with the parent, the manifest's checks,
and the graph transforms (front-end untouched, weights restored within their rounding)."""
import copy
import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from parity import judge
from ser_export import tolerances
from ser_export.manifest import Manifest, ManifestError


def test_every_class_is_declared_with_its_bounds_and_orders_from_tight_to_loose():
    classes = tolerances.load()["classes"]
    assert set(tolerances.CLASSES) <= set(classes)  # the variant classes (the stream classes live beside them)
    exact, fp16, int8, int8s = (tolerances.for_class(c) for c in ("exact", "fp16", "int8", "int8s"))
    assert exact["logits_max_abs"] <= fp16["logits_max_abs"] <= int8["logits_max_abs"] <= int8s["logits_max_abs"]
    assert exact["top1_agreement_min"] >= fp16["top1_agreement_min"] >= int8["top1_agreement_min"]
    assert fp16["top1_agreement_min"] == 0.995 and int8["top1_agreement_min"] == 0.97  # the targets
    assert fp16["accuracy_drop_max"] == 0.005 and int8["accuracy_drop_max"] == 0.015
    # issue 28's targets for the static-int8 variant: >= 98 % top-1 agreement, <= 1 point of accuracy lost
    assert int8s["top1_agreement_min"] >= 0.98 and int8s["accuracy_drop_max"] <= 0.01
    assert set(int8s) - set(tolerances.CLASS_KEYS) <= set(tolerances.STAGE_CLASS_KEYS)


def test_a_class_s_stage_bounds_replace_the_defaults_for_its_variants_only():
    from parity.config import GateConfig
    from parity.variants import class_config

    cfg = GateConfig()
    assert class_config(cfg, "int8") is cfg and class_config(cfg, "fp16") is cfg
    mine = class_config(cfg, "int8s").tolerances
    bounds, shipped = tolerances.for_class("int8s"), tolerances.load()
    for key, (stage, name) in tolerances.STAGE_CLASS_KEYS.items():
        assert mine["defaults"][stage][name] == bounds[key] != shipped["defaults"][stage][name]
    assert mine["defaults"]["logmel_db"] == shipped["defaults"]["logmel_db"]  # the front-end is judged as any model
    assert tolerances.load() == shipped  # the shipped tolerances are untouched


@pytest.mark.parametrize("bad, message", [
    ({"classes": {"fp8": {"logits_max_abs": 1}}}, "classes.fp8 is not a tolerance class"),
    ({"classes": {"int8": {"top1": 1}}}, "classes.int8.top1 is not a class bound"),
    ({"classes": {"int8": {"top1_agreement_min": 1.5}}}, "must be a finite number >= 0 and <= 1"),
    ({"classes": {"int8": {"logits_max_abs": -1}}}, "must be a finite number >= 0"),
])
def test_class_overrides_are_checked(bad, message):
    with pytest.raises(ValueError, match=message):
        tolerances.apply_overrides(bad)
    assert tolerances.apply_overrides({"classes": {"int8": {"logits_max_abs": 2}}})["classes"]["int8"][
        "logits_max_abs"] == 2.0


@settings(max_examples=40, deadline=None)
@given(n=st.integers(5, 60), scale=st.floats(0.0, 0.49), seed=st.integers(0, 2**31 - 1))
def test_a_variant_within_half_the_logit_bound_passes_logits_and_top1(n, scale, seed):
    """Each logit within half the bound: no decision with a gap beyond the bound can flip (the tie rule)."""
    rng = np.random.default_rng(seed)
    parent = rng.normal(0, 3, (n, 7))
    tol = tolerances.for_class("int8")
    ours = parent + rng.uniform(-1, 1, parent.shape) * scale * tol["logits_max_abs"]
    targets = parent.argmax(1)
    results = [r for r in judge.judge_vs_parent("m.int8", "ort", "m", ours, parent, [str(i) for i in range(n)], None,
                                                tol, judge.HELDOUT, targets=targets) if "accuracy" not in r.stage]
    assert len(results) == 2
    failed = [r.message() for r in results if not r.passed]
    assert not failed, f"counterexample n={n} scale={scale} seed={seed}: {failed}"


@settings(max_examples=40, deadline=None)
@given(n=st.integers(20, 80), seed=st.integers(0, 2**31 - 1))
@example(n=20, seed=2**31 - 1)  # CI's counterexample when the winners were not made clear (a near-tie is excused)
def test_flipped_decisions_beyond_the_class_fail_on_agreement_and_accuracy(n, seed):
    rng = np.random.default_rng(seed)
    parent = rng.normal(0, 1, (n, 7))
    parent[np.arange(n), rng.integers(0, 7, n)] = parent.max(1) + 5.0  # clear winners (gap >= 5): no ties
    tol = tolerances.for_class("fp16")
    ours = parent.copy()
    k = max(1, n // 10)
    ours[:k] = np.roll(parent[:k], 1, axis=1)  # a tenth of the decisions move elsewhere
    results = {r.stage: r for r in judge.judge_vs_parent("m.fp16", "ort", "m", ours, parent, [str(i) for i in range(n)],
                                                         None, tol, judge.HELDOUT, targets=parent.argmax(1))}
    top1 = results["vs_parent[top1,heldout]"]
    assert not top1.passed and top1.metrics["agreement"] == pytest.approx(1 - k / n), f"counterexample n={n} seed={seed}"
    assert not results["vs_parent[accuracy,heldout]"].passed
    assert not results["vs_parent[logits,heldout]"].passed


@pytest.mark.parametrize("n, lost, bound, passes", [
    (21, 1, 0.01, True),     # a quick build's 21 held-out clips: one clip is the finest step, allowed
    (21, 2, 0.01, False),
    (21, 1, 0.0, False),     # a zero bound (the exact class) allows no clip at all
    (224, 2, 0.01, True),    # the committed release: 1 % of 224 clips is 2.24, so two clips
    (224, 3, 0.01, False),
])
def test_the_accuracy_a_variant_may_lose_is_counted_in_clips(n, lost, bound, passes):
    """The class's accuracy bound as a share of the clips, never below one clip when it is not zero (a
    quick build's distributed run lost 1 of 21 clips, 4.8 points, against a 1-point bound it cannot resolve)."""
    targets = np.arange(n) % 3
    parent = np.eye(3)[targets] * 5.0
    ours = parent.copy()
    ours[:lost] = np.roll(parent[:lost], 1, axis=1)  # these clips are no longer right
    tol = dict(tolerances.for_class("int8"), accuracy_drop_max=bound)
    acc = next(r for r in judge.judge_vs_parent("m.v", "ort", "m", ours, parent, [str(i) for i in range(n)], None,
                                                tol, judge.HELDOUT, targets=targets) if "accuracy" in r.stage)
    assert acc.passed is passes and acc.metrics["drop"] == pytest.approx(lost / n)


def test_a_tie_within_the_class_bound_is_excused_and_counted():
    parent = np.array([[1.0, 0.99, -3.0], [4.0, 0.0, 0.0]])
    ours = np.array([[0.99, 1.0, -3.0], [4.0, 0.0, 0.0]])
    r = next(r for r in judge.judge_vs_parent("m", "ort", "m", ours, parent, ["a", "b"], None,
                                              tolerances.for_class("fp16")) if r.stage == "vs_parent[top1]")
    assert r.passed and r.metrics["agreement"] == 1.0 and r.metrics["agreement_plain"] == 0.5
    assert r.metrics["ties_exempt"] == 1


def _manifest(quick):
    return json.loads((quick / "manifest.json").read_text())


@pytest.mark.parametrize("change, message", [
    (lambda v, e: v.__setitem__("parent_sha256", "f" * 64), "parent_sha256 is not models.alexnet.sha256"),
    (lambda v, e: v.__setitem__("tolerance_class", "loose"), "tolerance_class 'loose' is not one of"),
    (lambda v, e: v.__setitem__("file", "../x.onnx"), "is not a file of the release"),
    (lambda v, e: v.__setitem__("file", e["file"]), "is listed twice"),
    (lambda v, e: v.__setitem__("sha256", "xyz"), "sha256 is not 64 hexadecimal digits"),
])
def test_the_manifest_refuses_a_variant_entry_that_contradicts_the_release(quick_release, change, message):
    data = _manifest(quick_release["out"])
    Manifest.from_dict(copy.deepcopy(data))
    entry = data["models"]["alexnet"]
    change(entry["variants"]["int8"], entry)
    with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace(".", r"\.")):
        Manifest.from_dict(data)


def test_variants_keep_the_front_end_and_restore_weights_within_their_rounding(quick_release):
    import onnx
    from onnx import numpy_helper

    from ser_export.export.variants import classifier_nodes, make_variant, run_batches, session

    parent = onnx.load(str(quick_release["out"] / "voice_emotion_cnn.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in parent.graph.initializer}
    nodes = classifier_nodes(parent, "logmel")
    classifier = {n.name for n in nodes}  # (by name: id() of protobuf wrappers is no identity)
    front = {i for n in parent.graph.node if n.name not in classifier for i in n.input if i in inits}
    # what each variant must store in reduced precision (every one of them, so the checks below are never empty):
    # fp16 every float classifier initializer, int8 every Conv/Gemm weight matrix of the classifier
    expected = {"fp16": {i for n in nodes for i in n.input if i in inits and i not in front},
                "int8": {n.input[1] for n in nodes if n.op_type in ("Conv", "Gemm") and inits[n.input[1]].ndim >= 2}}
    assert any(inits[f].dtype == np.float32 and inits[f].size > 1000 for f in front)  # the mel filterbank, at least
    assert expected["int8"] and expected["int8"] <= expected["fp16"]
    x = np.random.default_rng(0).normal(0, 0.1, (3, 46305)).astype(np.float32)
    for name in ("fp16", "int8"):
        child = make_variant(parent, name, "0" * 64, "logmel")
        got = {t.name: numpy_helper.to_array(t) for t in child.graph.initializer}
        for f in front:
            assert got[f].dtype == inits[f].dtype and np.array_equal(got[f], inits[f]), f"{name}: front-end {f} changed"
        stored = {w[:-5] for w in got if w.endswith(f".{name}")}
        assert stored == expected[name] and not stored & set(got), (name, sorted(expected[name] ^ stored))
        for base in stored:
            q = got[f"{base}.{name}"]
            if name == "int8":
                restored = q.astype(np.float32) * got[base + ".scale"].reshape(
                    [-1] + [1] * (q.ndim - 1) if q.ndim > 2 or "classifier.5" not in base else [-1, 1])
                step = np.abs(got[base + ".scale"]).max()
                assert q.dtype == np.int8 and np.abs(restored - inits[base]).max() <= 0.5 * step + 1e-7, base
            else:
                assert q.dtype == np.float16, base
                assert np.allclose(q.astype(np.float32), inits[base], rtol=1e-3, atol=1e-7), base
        # the log-mel is computed by untouched float32 nodes: identical bits
        with_feats = onnx.ModelProto.FromString(child.SerializeToString())
        with_feats.graph.output.insert(0, onnx.helper.make_tensor_value_info("logmel", onnx.TensorProto.FLOAT, None))
        p2 = onnx.ModelProto.FromString(parent.SerializeToString())
        p2.graph.output.insert(0, onnx.helper.make_tensor_value_info("logmel", onnx.TensorProto.FLOAT, None))
        assert np.array_equal(run_batches(session(with_feats), x), run_batches(session(p2), x))
