"""The studies in experiments/ (outside the package): their caches agree with the product's."""

import numpy as np
import torch

from emostream.engine.asr import bundled_asr_dir


def test_frame_cache_pools_to_the_cached_stats_and_attentive_head_starts_as_the_probe(tmp_path, speech):
    """The frame cache holds what the stats cache pooled (fp16), and an untrained attentive head is
    exactly the probe it starts from: the scorer gives uniform weights over the speech mask."""
    from emostream.engine.sec import AttentiveProbeHead, ProbeHead, SECHeadConfig, layer_stats
    from emostream.engine.training.augment import Condition
    from emostream.engine.training.robust_data import RobustSet, StatsEncoder, set_features
    from robust_frames import frame_features
    from emostream.engine.training.sec_train import _batch

    waves = [np.concatenate([np.zeros(8000, np.float32), w, np.zeros(8000, np.float32)]) for w in speech.values()]
    encoder = StatsEncoder(str(bundled_asr_dir()))
    rset = RobustSet("clean", Condition("clean"))  # the clean condition needs no noise bank
    frames = frame_features(tmp_path, rset, None, waves, encoder, seed=0)
    stats = set_features(tmp_path, rset, None, waves, encoder, ("trim",), seed=0)["trim"]
    assert len(frames) == len(waves) and (tmp_path / f"frames_v1_clean_{len(waves)}").is_dir()
    items = frames.clips(np.arange(len(waves)))
    pooled = np.stack([layer_stats(c.states.float()[:, None], c.mask[None])[0].numpy()
                       for c in items])
    np.testing.assert_allclose(pooled, stats, atol=0.01)
    assert all(0 < int(c.mask.sum()) < c.mask.numel() for c in items)  # leading/trailing silence is masked out

    torch.manual_seed(0)
    probe, attentive = ProbeHead(SECHeadConfig()), AttentiveProbeHead(SECHeadConfig())
    attentive.load_state_dict(probe.state_dict(), strict=False)
    x, _, speech_mask = _batch(items, 0.0)  # padded batch: padding must get no weight
    with torch.no_grad():
        np.testing.assert_allclose(attentive.embedding(x, speech_mask).numpy(), probe.embedding(x, speech_mask).numpy(),
                                   atol=1e-4)
        w = attentive.frame_weights(x, speech_mask)
    assert torch.all(w[~speech_mask] == 0) and torch.allclose(w.sum(1), torch.ones(len(items)))
