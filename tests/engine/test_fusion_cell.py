"""The MFSN search space: every operation with variable lengths and masks (zero-length text
included), frame pooling, the trust head, the searchable and derived cells, the concatenation
control, genotype JSON, ONNX parity of a derived cell on real SEC frames and TEC tokens, and a
saved cell driving the Recognizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emostream.engine.fusion.cell import CellConfig, ConcatFusion, FusionCell, TrustHead, pool_frames
from emostream.engine.fusion.searched import ONNX_INPUTS, CellFileError, export_cell_onnx, load_cell, save_cell
from emostream.engine.fusion.genotype import Edge, Genotype
from emostream.engine.fusion.ops import OPS, POOLINGS, SpeechContext, make_op, make_pool, masked_mean

D = 16


def batch(text_lengths=(0, 3, 7), speech_lengths=(5, 9, 2), seed=0):
    g = torch.Generator().manual_seed(seed)
    b, tt, ts = len(text_lengths), max(text_lengths) + 1, max(speech_lengths)
    x = torch.randn(b, tt, D, generator=g)
    x_mask = torch.zeros(b, tt, dtype=torch.bool)
    for i, n in enumerate(text_lengths):
        x_mask[i, : n + 1] = True  # + the summary position
    s = torch.randn(b, ts, D, generator=g)
    s_mask = torch.zeros(b, ts, dtype=torch.bool)
    for i, n in enumerate(speech_lengths):
        s_mask[i, :n] = True
    x = x * x_mask.unsqueeze(-1)
    return x, x_mask, SpeechContext(s, s_mask, masked_mean(s, s_mask))


@pytest.mark.parametrize("name", OPS)
def test_every_operation_respects_masks(name):
    torch.manual_seed(0)
    op = make_op(name, D, heads=4).eval()
    x, x_mask, ctx = batch()
    out = op(x, x_mask, ctx)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert (out[~x_mask] == 0).all(), "padded text positions must stay zero"
    # what lies beyond the masks must not change the real positions
    x2, s2 = x.clone(), ctx.frames.clone()
    x2[~x_mask] = 99.0
    s2[~ctx.mask] = -99.0
    out2 = op(x2 * x_mask.unsqueeze(-1), x_mask, SpeechContext(s2, ctx.mask, ctx.pooled))
    torch.testing.assert_close(out2[x_mask], out[x_mask], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", POOLINGS)
def test_pooling_ignores_padding_and_handles_a_single_position(name):
    pool = make_pool(name, D)
    x, x_mask, _ = batch(text_lengths=(0, 4), speech_lengths=(5, 9))
    pooled = pool(x, x_mask)
    x2 = x.clone()
    x2[~x_mask] = 50.0
    torch.testing.assert_close(pool(x2, x_mask), pooled)
    torch.testing.assert_close(pooled[0], x[0, 0], atol=1e-6, rtol=1e-6)  # empty transcript: the summary token


def test_searchable_cell_runs_on_empty_and_full_transcripts_and_derives():
    torch.manual_seed(0)
    cfg = CellConfig(speech_dim=24, text_dim=20, d=D, heads=4, nodes=3)
    cell = FusionCell(cfg)
    speech, s_mask = torch.randn(2, 11, 24), torch.tensor([[True] * 11, [True] * 6 + [False] * 5])
    for tt in (0, 5):  # a batch where nobody said words, then one with words
        text = torch.randn(2, tt, 20)
        t_mask = torch.ones(2, tt, dtype=torch.bool)
        logits, va = cell(speech, s_mask, text, t_mask, torch.tensor([0.0, 0.8]), torch.randn(2, 7), torch.randn(2, 7))
        assert logits.shape == (2, cfg.num_labels) and va.shape == (2, 2) and torch.isfinite(logits).all()
    assert {id(p) for p in cell.arch_parameters()}.isdisjoint({id(p) for p in cell.weight_parameters()})
    g = cell.derive()
    assert len(g.nodes) == 3 and [len(n) for n in g.nodes] == [1, 2, 2]
    assert all(e.op != "zero" for n in g.nodes for e in n)
    weights = cell.architecture_weights()
    assert len(weights["edges"]) == 6 and sum(weights["pooling"].values()) == pytest.approx(1.0)


def test_genotype_json_round_trip_and_validation(tmp_path):
    g = Genotype(((Edge(0, "film"),), (Edge(0, "text_to_speech_attention"), Edge(1, "speech_gate"))), "attentive")
    path = tmp_path / "genotype.json"
    g.save(path)
    assert Genotype.load(path) == g
    assert Genotype.from_dict(g.to_dict()).to_json() == g.to_json()
    with pytest.raises(ValueError, match="earlier node"):
        Genotype(((Edge(1, "film"),),), "mean")
    with pytest.raises(ValueError, match="unknown operation 'lstm'"):
        Genotype(((Edge(0, "lstm"),),), "mean")
    with pytest.raises(ValueError, match="unknown pooling"):
        Genotype(((Edge(0, "film"),),), "max")
    with pytest.raises(ValueError, match="version"):
        Genotype.from_dict({**g.to_dict(), "version": 9})


def test_frame_pooling_is_a_masked_average_and_keeps_partial_windows():
    frames = torch.arange(2 * 10 * 3, dtype=torch.float32).reshape(2, 10, 3)
    mask = torch.tensor([[True] * 10, [True] * 5 + [False] * 5])
    pooled, pmask = pool_frames(frames, mask, 4)
    assert pooled.shape == (2, 3, 3) and pmask.tolist() == [[True, True, True], [True, True, False]]
    torch.testing.assert_close(pooled[0, 2], frames[0, 8:10].mean(0))  # the partial last window
    torch.testing.assert_close(pooled[1, 1], frames[1, 4])  # only one real frame in that window
    assert (pooled[1, 2] == 0).all()


def test_trust_head_weighs_the_branches_and_ignores_text_without_words():
    torch.manual_seed(0)
    head = TrustHead(d=8, hidden=16, dropout=0.0, num_labels=7).eval()
    fused, sec, text = torch.randn(3, 8), torch.randn(3, 7), torch.randn(3, 7)
    has = torch.tensor([[1.0], [1.0], [0.0]])
    logits, va = head(fused, sec, text, torch.tensor([0.9, 0.5, 0.0]), has)
    trust, *_ = head.trust_weights(fused, sec, text, torch.tensor([0.9, 0.5, 0.0]), has)
    expected = trust[:, :1] * torch.log_softmax(sec, -1) + trust[:, 1:] * torch.log_softmax(text, -1) * has
    torch.testing.assert_close(logits, expected)
    assert (trust >= 0).all() and va.abs().max() <= 1
    logits2, _ = head(fused, sec, text * 100, torch.tensor([0.9, 0.5, 0.0]), has)
    torch.testing.assert_close(logits2[2], logits[2])  # no transcript: the text logits cannot matter


def test_concatenation_control_runs_without_words():
    torch.manual_seed(0)
    model = ConcatFusion(CellConfig(speech_dim=24, text_dim=20, d=D, hidden=16)).eval()
    logits, va = model(torch.randn(2, 9, 24), torch.ones(2, 9, dtype=torch.bool), torch.zeros(2, 0, 20),
                       torch.zeros(2, 0, dtype=torch.bool), torch.zeros(2), torch.randn(2, 7), torch.randn(2, 7))
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()


GENOTYPE = Genotype(((Edge(0, "text_to_speech_attention"),), (Edge(0, "film"), Edge(1, "speech_to_text_attention")),
                     (Edge(1, "speech_gate"), Edge(2, "concat_mlp"))), "attentive")


def cell_inputs(recognizer, wave, words):
    """Exactly what the Recognizer hands the cell, from real speech and a real transcript."""
    from emostream.engine.recognizer import cell_inputs as inputs_of

    return inputs_of(*recognizer_branches(recognizer, wave, words), 0.8)


def recognizer_branches(recognizer, wave, words):
    with torch.inference_mode():
        emb, logits, frames, mask = recognizer.sec_model.with_frames(torch.from_numpy(wave)[None])
    from emostream.engine.recognizer import SECOutput

    return SECOutput(emb[0].numpy(), logits[0].numpy(), frames[0].numpy(), mask[0].numpy()), recognizer.text(words)


def test_derived_cell_exports_to_onnx_with_the_same_probabilities(recognizer, speech, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    cell = FusionCell(CellConfig(), GENOTYPE).eval()
    path = export_cell_onnx(cell, tmp_path / "cell.onnx",
                            cell_inputs(recognizer, speech["happy"], "this is the best day of my life"))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # other lengths than the export example, and an empty transcript (zero text tokens)
    for wave, words in ((speech["sad"], "i miss her so much"), (speech["happy"], ""), (speech["sad"][:8000], "no")):
        inputs = cell_inputs(recognizer, wave, words)
        with torch.no_grad():
            logits, va = cell(*inputs)
        got = session.run(None, dict(zip(ONNX_INPUTS, [t.numpy() for t in inputs])))
        p_t = torch.softmax(logits, -1).numpy()
        p_o = torch.softmax(torch.from_numpy(got[0]), -1).numpy()
        assert np.abs(p_o - p_t).max() < 1e-4, words
        np.testing.assert_allclose(got[1], va.numpy(), atol=1e-4)


def test_saved_cell_loads_and_drives_the_recognizer(recognizer, speech, tmp_path):
    from emostream.engine.recognizer import Recognizer

    torch.manual_seed(0)
    cell = FusionCell(CellConfig(), GENOTYPE).eval()
    save_cell(cell, tmp_path / "cell", {"note": "test"})
    loaded, manifest = load_cell(tmp_path / "cell.json")
    assert manifest["note"] == "test" and loaded.genotype == GENOTYPE
    inputs = cell_inputs(recognizer, speech["sad"], "i miss her so much")
    with torch.no_grad():
        torch.testing.assert_close(loaded(*inputs)[0], cell(*inputs)[0])
    with pytest.raises(CellFileError, match="no searched fusion cell"):
        load_cell(tmp_path / "missing")
    with pytest.raises(ValueError, match="torch backend"):
        Recognizer(fusion=tmp_path / "cell.json", sec_backend="onnxruntime")
    searched = Recognizer(fusion=tmp_path / "cell.json", torch_threads=1)
    try:
        assert searched.model_ids["fusion"] == "searched-cell" and searched.sec_backend.name == "torch"
        result = searched.classify(speech["sad"])
        assert abs(sum(result.probs.values()) - 1) < 1e-4 and result.timings_ms["fusion"] > 0
        # the same utterance by hand through the same cell (classify judges the segmenter's speech span)
        from emostream.streaming.segmenter import trim_to_speech

        sec, tec = recognizer_branches(searched, trim_to_speech(speech["sad"])[0], result.transcript)
        probs, _, _ = searched.fuse(sec, tec, result.asr_confidence)
        assert max(abs(probs[i] - p) for i, p in enumerate(result.probs.values())) < 1e-5
        silent = searched.fuse(sec, searched.text(""), 0.0)[0]  # no transcript
        assert abs(silent.sum() - 1) < 1e-4
    finally:
        searched.close()


def test_a_searched_cell_brings_its_calibrator_and_names_its_bundle(recognizer, speech, tmp_path, caplog):
    """The cell's manifest carries the calibrator fitted on its own out-of-fold outputs: the
    recognizer applies it with the same signals training used (a signal-dependent temperature and a
    label-aware correctness stage, so wrong signals would change the result); a cell trained against
    other branches is named in a warning, one trained against these is not; a cell from before
    calibration passes its probabilities unchanged."""
    import logging

    from emostream.engine.calibration import KNOWN_FEATURES, SIGNALS, Calibrator, calibration_signals
    from emostream.engine.fusion.searched import BUNDLE_PARTS_READ
    from emostream.engine.recognizer import Recognizer

    torch.manual_seed(0)
    cell = FusionCell(CellConfig(), GENOTYPE).eval()
    rng = np.random.default_rng(0)
    calib = Calibrator(0.5, tuple(rng.normal(0, 0.5, len(SIGNALS))), tuple(rng.normal(0, 0.5, len(KNOWN_FEATURES) + 1)),
                       KNOWN_FEATURES)
    words = "i miss her so much"
    for name, digest in (("other", "0000000000"), ("same", recognizer.bundle.digest(*BUNDLE_PARTS_READ))):
        save_cell(cell, tmp_path / name, {"calibration": calib.to_manifest("test"),
                                          "bundle": {"model_id": name, "digest": digest}})
    save_cell(cell, tmp_path / "before", {"note": "no calibration"})
    with caplog.at_level(logging.WARNING, logger="emostream.engine.recognizer"):
        searched = Recognizer(fusion=tmp_path / "other.json", torch_threads=1)
    try:
        assert [r for r in caplog.records if "another model bundle" in r.getMessage()]
        assert searched.calibrator == calib
        sec, tec = recognizer_branches(searched, speech["sad"], words)
        probs, _, _ = searched.fuse(sec, tec, 0.8)
        with torch.no_grad():
            raw = cell(*cell_inputs(searched, speech["sad"], words))[0][0].numpy()
        want = calib(raw, calibration_signals(sec.logits, tec.logits, [1.0], [0.8]))[0]
        np.testing.assert_allclose(probs, want, atol=1e-5)
        assert np.abs(probs - torch.softmax(torch.from_numpy(raw), -1).numpy()).max() > 1e-3
    finally:
        searched.close()
    caplog.clear()
    for name in ("same", "before"):
        with caplog.at_level(logging.WARNING, logger="emostream.engine.recognizer"):
            other = Recognizer(fusion=tmp_path / f"{name}.json", torch_threads=1)
        try:
            assert not [r for r in caplog.records if "another model bundle" in r.getMessage()]
            assert other.calibrator == (calib if name == "same" else Calibrator())
        finally:
            other.close()
