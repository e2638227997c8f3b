"""Regenerate the committed demo clips in emostream/samples/ with espeak-ng (deterministic)."""

from pathlib import Path

import soundfile as sf

from emostream.engine.training.speech_synth import Voice, speak

SAMPLES = {
    "happy_news.wav": ("This is wonderful news, I am so happy for you!", Voice("en-us", 165, 60)),
    "angry_complaint.wav": ("I am furious, you lied to me again and I hate it!", Voice("en-gb", 175, 40)),
}

if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "emostream" / "samples"
    out.mkdir(exist_ok=True)
    for name, (text, voice) in SAMPLES.items():
        sf.write(out / name, speak(text, voice), 16000, subtype="PCM_16")
        print(out / name)
