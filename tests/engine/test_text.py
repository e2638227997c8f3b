import torch

from emostream.engine.text import TextEncoder, masked_mean


def test_cached_lower_layers_plus_upper_equal_full_forward():
    enc = TextEncoder()
    batch = enc.tokenize(["I can't believe you did that!", "ok"])
    with torch.no_grad():
        _, full = enc(batch)
        low = enc.lower_states(batch, 4)
        upper = masked_mean(enc.upper(low, batch["attention_mask"], 4), batch["attention_mask"])
    torch.testing.assert_close(upper, full, atol=1e-5, rtol=0)


def test_tuned_layers_round_trip():
    a, b = TextEncoder(), TextEncoder()
    with torch.no_grad():
        for p in a.bert.encoder.layer[5].parameters():
            p.add_(0.01)
    b.load_tuned(a.tuned_state_dict(2))
    batch = a.tokenize(["hello there"])
    with torch.no_grad():
        torch.testing.assert_close(a(batch)[1], b(batch)[1])
