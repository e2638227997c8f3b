"""SEC inference backends: each one present gives torch's probabilities on real speech.

Tolerances (max |probability difference| vs torch FP32): ONNX Runtime CPU 1e-4 (float32 end to
end; measured ~2e-8), CUDA backends 1e-3 (other kernels; TF32 is off, as with it torch-cuda
moved probabilities by 2.8e-3 on an H200), TensorRT 0.02 (FP16 where it passes
that bound at build time, else FP32). GPU backends skip here with the reason when absent.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

from emostream.engine.backends import BackendUnavailable, make_sec_backend
from emostream.engine.backends.cache import exported_sec_onnx, model_hash
from emostream.engine.bundle import Bundle
from emostream.engine.recognizer import load_sec

TOLERANCE = {"onnxruntime": 1e-4, "onnxruntime-cuda": 1e-3, "tensorrt": 0.02, "torch": 0.0, "torch-cuda": 1e-3}


@pytest.fixture(scope="module")
def sec_model():
    return load_sec(Bundle.load())


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("emostream-cache")


def utterances(speech, ravdess=None):
    clips = list(speech.values()) + [speech["happy"][:2400]]  # 3 lengths, one just 0.15 s
    if ravdess is not None:
        from emostream.streaming.audio import load_audio

        clips.append(load_audio(ravdess))
    return clips


@pytest.mark.parametrize("name", ["onnxruntime", "onnxruntime-cuda", "tensorrt"])
def test_backend_matches_torch_on_real_speech(name, sec_model, cache, speech):
    try:
        backend = make_sec_backend(name, sec_model, threads=2, cache_dir=cache)
    except BackendUnavailable as exc:
        pytest.skip(f"{name} not available here: {exc}")
    assert backend.name == name and backend.describe()["backend"] == name
    for wave in utterances(speech):
        with torch.inference_mode():
            emb, logits = sec_model(torch.from_numpy(wave)[None])
        emb_b, logits_b = backend(wave)
        assert emb_b.shape == emb[0].shape and logits_b.shape == logits[0].shape
        p_ref = torch.softmax(logits[0], -1).numpy()
        p_got = torch.softmax(torch.from_numpy(np.asarray(logits_b, np.float32)), -1).numpy()
        assert np.abs(p_got - p_ref).max() <= TOLERANCE[name]
        if name == "onnxruntime":
            np.testing.assert_allclose(emb_b, emb[0].numpy(), atol=1e-4)


def test_torch_cuda_matches_torch_cpu_on_real_speech(sec_model, speech):
    from emostream.engine.backends.torch_backend import TorchSEC

    try:
        backend = TorchSEC(sec_model, device="cuda")
    except BackendUnavailable as exc:
        pytest.skip(f"torch-cuda not available here: {exc}")
    assert backend.name == "torch-cuda" and next(sec_model.parameters()).device.type == "cpu"
    for wave in utterances(speech):
        with torch.inference_mode():
            _, logits = sec_model(torch.from_numpy(wave)[None])
        _, logits_b = backend(wave)
        p_ref, p_got = torch.softmax(logits[0], -1).numpy(), torch.softmax(torch.from_numpy(logits_b), -1).numpy()
        assert np.abs(p_got - p_ref).max() <= TOLERANCE["torch-cuda"]


def test_onnx_export_is_cached_by_model_and_rebuilt_when_weights_change(sec_model, tmp_path):
    import copy

    first = exported_sec_onnx(sec_model, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert exported_sec_onnx(sec_model, tmp_path) == first and first.stat().st_mtime_ns == stamp
    changed = copy.deepcopy(sec_model)
    with torch.no_grad():
        changed.head.classify.bias[0] += 1.0
    assert model_hash(changed) != model_hash(sec_model)
    assert exported_sec_onnx(changed, tmp_path) != first
    assert not [p for p in os.listdir(first.parent) if ".tmp" in p]


def test_auto_picks_the_fastest_available_and_says_why(sec_model, cache, caplog):
    caplog.set_level(logging.INFO, logger="emostream.engine.backends")
    backend = make_sec_backend("auto", sec_model, threads=2, cache_dir=cache)
    expected = []
    for name in ("tensorrt", "onnxruntime-cuda", "onnxruntime"):
        try:
            make_sec_backend(name, sec_model, threads=1, cache_dir=cache)
            expected.append(name)
        except BackendUnavailable:
            pass
    assert backend.name == expected[0]
    message = " ".join(r.getMessage() for r in caplog.records)
    assert f"SEC backend: {backend.name} (auto" in message
    if backend.name != "tensorrt":
        assert "skipped tensorrt:" in message


def test_unknown_backend_is_refused(sec_model):
    with pytest.raises(ValueError, match="unknown SEC backend 'tensorflow'"):
        make_sec_backend("tensorflow", sec_model)


def test_recognizer_probabilities_agree_across_backends(recognizer, speech):
    """The whole classify path: the default (auto) backend against torch eager."""
    from emostream.engine.backends.torch_backend import TorchSEC

    torch_sec = TorchSEC(recognizer.sec_model)
    for wave in speech.values():
        auto = recognizer.sec(wave)
        emb, logits = torch_sec(wave)
        p_auto = torch.softmax(torch.from_numpy(auto.logits), -1).numpy()
        p_torch = torch.softmax(torch.from_numpy(logits), -1).numpy()
        assert np.abs(p_auto - p_torch).max() <= TOLERANCE[recognizer.sec_backend.name]


def test_the_longest_utterance_fits_every_backend(sec_model, cache, speech):
    """30 s is the limit a file or a forced cut can reach; Whisper's 1500 positions must cover it."""
    wave = np.resize(speech["happy"], 30 * 16000).astype(np.float32)
    with torch.inference_mode():
        _, logits = sec_model(torch.from_numpy(wave)[None])
    _, logits_ort = make_sec_backend("onnxruntime", sec_model, threads=2, cache_dir=cache)(wave)
    assert np.abs(logits_ort - logits[0].numpy()).max() < 1e-3
