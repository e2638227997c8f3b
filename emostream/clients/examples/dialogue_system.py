"""A dialogue system's side of emostream: pick a response style from each utterance's emotion.

    emostream listen &                                   # publishes on tcp://127.0.0.1:5556
    python -m emostream.clients.examples.dialogue_system

Keeps a running mood per speaker (stream) so one odd utterance does not flip the strategy, trusts
low-confidence results less, and notices from ``seq`` gaps when it missed something.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from emostream.protocol import DEFAULT_ENDPOINT
from emostream.clients.subscriber import EmotionEvent, Subscriber


@dataclass
class Mood:
    valence: float = 0.0
    arousal: float = 0.0

    def update(self, event: EmotionEvent, smoothing: float = 0.5) -> None:
        weight = smoothing * event.confidence  # an unsure result moves the mood less
        self.valence += weight * (event.valence - self.valence)
        self.arousal += weight * (event.arousal - self.arousal)


ACT_ON = 0.6  # calibrated confidence: right ~9 in 10 on acted speech, ~6 in 10 on conversation (README "Confidence")


def response_style(event: EmotionEvent, mood: Mood) -> str:
    if event.label == "angry" and event.confidence >= ACT_ON or mood.valence < -0.3 and mood.arousal > 0.3:
        return "de-escalate: acknowledge, slow down, offer a concrete next step"
    if event.label in ("sad", "fearful") or mood.valence < -0.3:
        return "empathise: reassure before giving information"
    if event.label in ("happy", "surprised") and mood.valence > 0.2:
        return "match the energy: be upbeat and brief"
    return "neutral: answer the question directly"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default=DEFAULT_ENDPOINT)
    parser.add_argument("--count", type=int, default=None, help="stop after this many utterances")
    parser.add_argument("--timeout", type=float, default=None, help="stop after this long without an utterance")
    args = parser.parse_args(argv)

    moods: dict[str, Mood] = {}
    handled = 0
    with Subscriber(args.endpoint, timeout_s=args.timeout) as events:
        for event in events:
            mood = moods.setdefault(event.stream_id, Mood())
            mood.update(event)
            said = event.transcript or "(no words: judged from the voice alone)"
            print(f"{event.stream_id} #{event.seq}: {event.label} ({event.confidence:.2f}) {said!r} "
                  f"-> {response_style(event, mood)}", flush=True)
            if events.missed.get(event.stream_id):
                print(f"  (missed {events.missed[event.stream_id]} utterance(s) so far on {event.stream_id})")
            handled += 1
            if args.count is not None and handled >= args.count:
                break
    return 0 if handled else 1


if __name__ == "__main__":
    raise SystemExit(main())
