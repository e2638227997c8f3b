"""The MFSN search space: every operation with variable lengths and masks (zero-length text
included), the searchable and derived cells, genotype JSON, and ONNX parity of a derived cell on
real SEC frames and TEC tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emostream.engine.fusion.cell import CellConfig, FusionCell
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
        logits, va = cell(speech, s_mask, text, t_mask, torch.tensor([0.0, 0.8]))
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


def real_features(recognizer, wave, transcript):
    with torch.inference_mode():
        mel = recognizer.sec_model.logmel(torch.from_numpy(wave)[None])
        frames = recognizer.sec_model.encoder(mel)[-1]  # last layer, (1, T, 384)
        if transcript:
            tokens, _ = recognizer.text_encoder(recognizer.text_encoder.tokenize([transcript]))
        else:
            tokens = torch.zeros(1, 0, recognizer.text_encoder.dim)
    return frames, tokens


def test_derived_cell_exports_to_onnx_with_the_same_probabilities(recognizer, speech, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    g = Genotype(((Edge(0, "text_to_speech_attention"),), (Edge(0, "film"), Edge(1, "speech_to_text_attention")),
                  (Edge(1, "speech_gate"), Edge(2, "concat_mlp"))), "attentive")
    cell = FusionCell(CellConfig(), g).eval()
    frames, tokens = real_features(recognizer, speech["happy"], "this is the best day of my life")
    args = (frames, torch.ones(frames.shape[:2], dtype=torch.bool), tokens,
            torch.ones(tokens.shape[:2], dtype=torch.bool), torch.tensor([0.9]))
    path = tmp_path / "cell.onnx"
    with torch.no_grad():
        torch.onnx.export(cell, args, str(path), dynamo=False, opset_version=17,
                          input_names=["speech", "speech_mask", "text", "text_mask", "asr_confidence"],
                          output_names=["logits", "va"],
                          dynamic_axes={"speech": {0: "b", 1: "ts"}, "speech_mask": {0: "b", 1: "ts"},
                                        "text": {0: "b", 1: "tt"}, "text_mask": {0: "b", 1: "tt"},
                                        "asr_confidence": {0: "b"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for wave, words in ((speech["sad"], "i miss her so much"), (speech["happy"], "")):  # empty transcript too
        frames, tokens = real_features(recognizer, wave, words)
        inputs = (frames, torch.ones(frames.shape[:2], dtype=torch.bool), tokens,
                  torch.ones(tokens.shape[:2], dtype=torch.bool), torch.tensor([0.7 if words else 0.0]))
        with torch.no_grad():
            logits, va = cell(*inputs)
        got = session.run(None, dict(zip(["speech", "speech_mask", "text", "text_mask", "asr_confidence"],
                                         [t.numpy() for t in inputs])))
        p_t = torch.softmax(logits, -1).numpy()
        p_o = torch.softmax(torch.from_numpy(got[0]), -1).numpy()
        assert np.abs(p_o - p_t).max() < 1e-4, words
        np.testing.assert_allclose(got[1], va.numpy(), atol=1e-4)
