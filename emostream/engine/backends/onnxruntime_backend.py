"""The SEC under ONNX Runtime: CPU, or the CUDA execution provider where onnxruntime-gpu is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OrtSEC:
    def __init__(self, path: str | Path, threads: int = 1, device: str = "cpu") -> None:
        import onnxruntime as ort

        from emostream.engine.backends import BackendUnavailable

        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailable("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
            # heuristic: an exhaustive cuDNN search would rerun for every new utterance length;
            # no TF32: in torch on an H200 it moved the SEC's probabilities by 2.8e-3 (the log-mel DFT is a conv)
            options = {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}
            providers = [("CUDAExecutionProvider", options), "CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        if device == "cuda" and self.session.get_providers()[0] != "CUDAExecutionProvider":
            raise BackendUnavailable("the CUDA execution provider did not start (no GPU or CUDA libraries missing)")
        self.path = Path(path)
        self.threads = threads
        self.name = "onnxruntime" if device == "cpu" else "onnxruntime-cuda"

    @classmethod
    def from_model(cls, sec_model, threads: int = 1, device: str = "cpu", cache_dir=None) -> OrtSEC:
        import onnxruntime as ort

        from emostream.engine.backends import BackendUnavailable
        from emostream.engine.backends.cache import exported_sec_onnx

        if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise BackendUnavailable("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
        return cls(exported_sec_onnx(sec_model, cache_dir), threads=threads, device=device)

    def __call__(self, waveform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        emb, logits = self.session.run(None, {"waveform": np.ascontiguousarray(waveform, dtype=np.float32)[None]})
        return emb[0], logits[0]

    def describe(self) -> dict:
        import onnxruntime as ort

        return {"backend": self.name, "onnxruntime": ort.__version__, "providers": self.session.get_providers(),
                "threads": self.threads, "model": self.path.name}
