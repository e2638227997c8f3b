"""ONNX export of the shipped SEC model: same numbers as torch under ONNX Runtime."""

import numpy as np
import torch

from emostream.engine.bundle import Bundle
from emostream.engine.onnx_export import OnnxSEC, export_sec_onnx
from emostream.engine.recognizer import load_sec

# float32 end to end; measured differences are ~2e-6. The bound leaves room for other CPUs' kernels.
ATOL = 1e-4


def test_sec_onnx_parity_on_real_speech(tmp_path, speech):
    model = load_sec(Bundle.load())
    path = export_sec_onnx(model, tmp_path / "sec.onnx")
    runner = OnnxSEC(path, threads=2)
    for wave in speech.values():  # two lengths: the dynamic axis works
        with torch.no_grad():
            emb, logits = model(torch.from_numpy(wave)[None])
        emb_o, logits_o = runner(wave)
        np.testing.assert_allclose(emb_o, emb[0].numpy(), atol=ATOL)
        np.testing.assert_allclose(logits_o, logits[0].numpy(), atol=ATOL)
        p_t = torch.softmax(logits[0], -1).numpy()
        p_o = torch.softmax(torch.from_numpy(logits_o), -1).numpy()
        np.testing.assert_allclose(p_o, p_t, atol=ATOL)
