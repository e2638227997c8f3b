"""The live pipeline end to end over a real ZeroMQ socket, on real spoken sentences."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile as sf
import zmq

from emostream.sinks.publisher import Publisher
from emostream.protocol import validate
from emostream.clients.subscriber import EmotionEvent, StatusEvent, Subscriber
from emostream.streaming.pipeline import Pipeline, PipelineConfig
from emostream.streaming.sources import FileSource


class Collect:
    """An in-process sink: what the monitor or the JSONL log would see."""

    def __init__(self):
        self.messages = []

    def emit(self, topic, message):
        self.messages.append((topic, message))

    def close(self):
        pass


def run_in_thread(pipeline: Pipeline, timeout: float = 120) -> None:
    t = threading.Thread(target=pipeline.run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "pipeline did not finish"


def subscribe_all(endpoint, **kw):
    events = []
    sub = Subscriber(endpoint, timeout_s=kw.pop("timeout_s", 3), **kw)
    thread = threading.Thread(target=lambda: events.extend(sub), daemon=True)
    thread.start()
    time.sleep(0.3)  # let the SUB connect before anything is published (PUB drops for late joiners)
    return sub, events, thread


def test_file_to_subscriber_in_order_with_consistent_timings(recognizer, dialogue, endpoint):
    sub, events, thread = subscribe_all(endpoint, status=True)
    pipeline = Pipeline(recognizer, [FileSource(dialogue.path, "talk", realtime=False)], [],
                        PipelineConfig(status_interval_s=0.5, max_pending=8), publisher=Publisher(endpoint))
    run_in_thread(pipeline)
    thread.join(10)
    sub.close()
    emotions = [e for e in events if isinstance(e, EmotionEvent)]
    statuses = [e for e in events if isinstance(e, StatusEvent)]
    assert [e.seq for e in emotions] == list(range(1, len(dialogue.sentences) + 1))
    for e, sentence, (start, end) in zip(emotions, dialogue.sentences, dialogue.spans):
        validate(e.message)
        assert e.topic == "emotion.talk" and e.stream_id == "talk"
        assert e.transcript, f"empty transcript for {sentence!r}"
        words = {w.strip(",.?!").lower() for w in sentence.split()}
        heard = {w.strip(",.?!").lower() for w in e.transcript.split()}
        assert len(words & heard) >= len(words) // 2, (sentence, e.transcript)
        assert e.start_s <= start and e.end_s >= end - 0.05
        assert sum(e.probs.values()) == pytest.approx(1, abs=1e-3) and e.probs[e.label] == e.confidence
        t = e.timings_ms
        assert t["branches"] >= max(t["sec"], t["asr"] + t["text"]) - 1
        assert t["sec_asr_overlap"] <= min(t["sec"], t["asr"]) + 1e-6
        assert t["vad_close_to_publish"] >= t["queue_wait"] + t["branches"] + t["fusion"] - 1
        assert e.message["utterance"]["vad_closed_at"] <= e.message["published_at"]
    # the branches really ran at the same time: most of SEC happened while ASR was running
    assert sum(e.timings_ms["sec_asr_overlap"] for e in emotions) > 0.5 * sum(e.timings_ms["sec"] for e in emotions)
    final = statuses[-1].message
    assert statuses and final["state"] == "stopped"
    assert final["streams"]["talk"]["published"] == len(dialogue.sentences)
    assert final["streams"]["talk"]["state"] == "ended"
    assert final["latency_ms"]["vad_close_to_publish"]["n"] == len(dialogue.sentences)
    assert final["publisher"]["send_failures"] == 0


def test_several_inputs_share_the_models_and_keep_their_ids(recognizer, dialogue, tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, dialogue.audio[: int(dialogue.spans[1][1] * 16000) + 8000], 16000)
    sink = Collect()
    pipeline = Pipeline(recognizer, [FileSource(dialogue.path, "a", realtime=False),
                                     FileSource(short, "b", realtime=False)], [sink], PipelineConfig(max_pending=8))
    run_in_thread(pipeline, 180)
    by_stream = {}
    for topic, m in sink.messages:
        if m["type"] == "emotion":
            assert topic == f"emotion.{m['stream_id']}"
            by_stream.setdefault(m["stream_id"], []).append(m["seq"])
    assert by_stream == {"a": [1, 2, 3, 4], "b": [1, 2]}


def test_streams_recognized_in_batches_get_what_each_gets_alone(recognizer, dialogue):
    """Three streams read as fast as possible fill the queue, so the worker takes several ready
    utterances at a time (finals of different streams, unequal lengths): every final is published
    once, in order per stream, with the transcript, label and probabilities of a batch-of-1 run."""
    def run(batch_size: int) -> list[dict]:
        sink = Collect()
        sources = [FileSource(dialogue.path, f"s{i}", realtime=False) for i in range(3)]
        run_in_thread(Pipeline(recognizer, sources, [sink], PipelineConfig(max_pending=12, batch_size=batch_size)),
                      300)
        return [m for _, m in sink.messages if m["type"] == "emotion"]

    batched, alone = run(4), run(1)
    assert max(m["batch"] for m in batched) > 1 and {m["batch"] for m in alone} == {1}
    key = lambda m: (m["stream_id"], m["seq"])  # noqa: E731
    assert sorted(map(key, batched)) == sorted(map(key, alone)) and len(batched) == 3 * len(dialogue.sentences)
    for sid in ("s0", "s1", "s2"):
        assert [m["seq"] for m in batched if m["stream_id"] == sid] == [1, 2, 3, 4]
    first = {key(m): m for m in alone}
    for m in batched:
        a = first[key(m)]
        assert (m["transcript"], m["label"]) == (a["transcript"], a["label"]), key(m)
        assert [m["probs"][k] for k in sorted(a["probs"])] == pytest.approx([a["probs"][k] for k in sorted(a["probs"])],
                                                                             abs=1e-3)
        validate(m)


def test_two_workers_publish_each_streams_finals_in_order(recognizer, dialogue):
    """``workers=2`` (``--concurrency 2``): two utterances of one stream are recognized at once and
    the later (shorter) one may finish first; it waits, so every stream's finals leave in seq order."""
    sink = Collect()
    sources = [FileSource(dialogue.path, f"s{i}", realtime=False) for i in range(2)]
    pipeline = Pipeline(recognizer, sources, [sink], PipelineConfig(max_pending=12, workers=2, batch_size=1))
    run_in_thread(pipeline, 300)
    finals = [m for _, m in sink.messages if m["type"] == "emotion"]
    for sid in ("s0", "s1"):
        assert [m["seq"] for m in finals if m["stream_id"] == sid] == [1, 2, 3, 4]
    assert pipeline.order.enabled and not pipeline.order._open  # nothing left waiting


def test_final_order_holds_a_later_final_until_the_earlier_one_is_done(speech, caplog):
    from emostream.streaming.final_order import FinalOrder
    from emostream.streaming.frames import Utterance

    def utt(seq: int) -> Utterance:
        return Utterance(stream_id="s", seq=seq, start_s=seq, end_s=seq + 1.0, samples=speech["happy"],
                         closed_wall=time.time(), closed_perf=time.perf_counter())

    order, published = FinalOrder(enabled=True), []
    first, second = utt(1), utt(2)
    order.opened(first)
    order.opened(second)

    def publish(u: Utterance) -> None:
        with order.turn(u):
            published.append(u.seq)

    later = threading.Thread(target=publish, args=(second,))
    later.start()
    later.join(0.3)
    assert later.is_alive() and published == []  # #2 finished first and waits for #1
    publish(first)
    later.join(5)
    assert published == [1, 2] and order.waited == 1 and not order._open
    stuck = FinalOrder(enabled=True, max_wait_s=0.1)  # a lost bookkeeping step costs order, never the result
    stuck.opened(first)
    with stuck.turn(second):
        pass
    assert "published before an earlier final" in caplog.text


def test_falling_behind_drops_the_oldest_and_reports_it(recognizer, dialogue):
    """A live input that delivers faster than the models go (here: the file read at full speed but
    marked live, like a device catching up after a stall) must drop, not queue without bound."""
    sink = Collect()
    burst = FileSource(dialogue.path, "fast", realtime=False)
    burst.live = True
    pipeline = Pipeline(recognizer, [burst], [sink], PipelineConfig(max_pending=1))
    run_in_thread(pipeline)
    final = [m for t, m in sink.messages if m["type"] == "status"][-1]
    st = final["streams"]["fast"]
    published = [m["seq"] for t, m in sink.messages if m["type"] == "emotion"]
    assert st["utterances"] == len(dialogue.sentences)
    assert st["dropped"] >= 1 and final["queue"]["dropped"] == st["dropped"]
    assert st["published"] + st["dropped"] == st["utterances"] == len(published) + st["dropped"]
    assert published[-1] == len(dialogue.sentences), "the newest utterance is the one kept"
    assert published == sorted(published)


@pytest.mark.slow  # a recording played in real time
def test_slow_and_absent_subscribers_never_stall_the_pipeline(recognizer, dialogue, endpoint):
    # a subscriber that connects with a tiny buffer and never reads, next to a normal one
    ctx = zmq.Context.instance()
    stuck = ctx.socket(zmq.SUB)
    stuck.setsockopt(zmq.RCVHWM, 1)
    stuck.setsockopt(zmq.SUBSCRIBE, b"")
    stuck.connect(endpoint)
    sub, events, thread = subscribe_all(endpoint, status=True)
    publisher = Publisher(endpoint, high_water_mark=1)
    from emostream.streaming.segmenter import SegmenterConfig

    # real-time pace: the run lasts as long as the recording, not as long as four fast recognitions
    pipeline = Pipeline(recognizer, [FileSource(dialogue.path, "x", realtime=True)], [],
                        PipelineConfig(status_interval_s=0.05, max_pending=8,
                                       segmenter=SegmenterConfig(partial_interval_s=0.0)), publisher=publisher)
    run_in_thread(pipeline)
    thread.join(10)
    sub.close()
    stuck.close(0)
    emotions = [e for e in events if isinstance(e, EmotionEvent)]
    final = [e for e in events if isinstance(e, StatusEvent)][-1].message
    assert final["streams"]["x"]["published"] == len(dialogue.sentences)
    assert publisher.sent > 20  # dozens of heartbeats went out while the stuck reader held one
    # every drop is visible: as a seq gap, or (before the first / after the last event received) against the
    # count the final status reports; a PUB with a send buffer of one may drop any message, the last included
    seqs = [e.seq for e in emotions]
    unseen_ends = (min(seqs) - 1) + (len(dialogue.sentences) - max(seqs)) if seqs else len(dialogue.sentences)
    assert len(emotions) + sum(sub.missed.values()) + unseen_ends == len(dialogue.sentences)

    # nobody listening at all: still runs to the end
    sink = Collect()
    alone = Pipeline(recognizer, [FileSource(dialogue.path, "y", realtime=False)], [sink],
                     publisher=Publisher(endpoint))
    run_in_thread(alone)
    assert sum(m["type"] == "emotion" for _, m in sink.messages) == len(dialogue.sentences)


def test_stop_finishes_and_publishes_the_utterance_in_progress(recognizer, dialogue):
    sink = Collect()
    pipeline = Pipeline(recognizer, [FileSource(dialogue.path, "live", realtime=True)], [sink],
                        PipelineConfig(status_interval_s=0.1))
    second_start, second_end = dialogue.spans[1]
    stop_at = (second_start + second_end) / 2
    threading.Timer(stop_at, pipeline.stop).start()
    run_in_thread(pipeline)
    emotions = [m for _, m in sink.messages if m["type"] == "emotion"]
    assert [m["seq"] for m in emotions] == [1, 2]
    cut = emotions[1]["utterance"]
    assert second_start - 0.5 < cut["start_s"] < second_start and cut["end_s"] < second_end
    assert cut["end_s"] == pytest.approx(stop_at, abs=0.5)
    states = [m["state"] for _, m in sink.messages if m["type"] == "status"]
    assert "stopping" in states and states[-1] == "stopped"  # heartbeats go on while the last one is processed


def test_a_broken_sink_does_not_stop_the_others(recognizer, dialogue):
    class Broken(Collect):
        def emit(self, topic, message):
            raise OSError("disk full")

    sink = Collect()
    pipeline = Pipeline(recognizer, [FileSource(dialogue.path, "z", realtime=False)], [Broken(), sink],
                        PipelineConfig(max_pending=8))
    run_in_thread(pipeline)
    assert sum(m["type"] == "emotion" for _, m in sink.messages) == len(dialogue.sentences)


def test_unclassifiable_utterance_is_counted_not_fatal(recognizer):
    from emostream.streaming.frames import Utterance

    sink = Collect()
    pipeline = Pipeline(recognizer, [_EmptySource("e")], [sink])
    bad = Utterance("e", 1, 0.0, 0.01, np.zeros(160, np.float32), time.time(), time.perf_counter())
    pipeline._enqueue(bad)
    run_in_thread(pipeline)
    final = [m for _, m in sink.messages if m["type"] == "status"][-1]
    assert final["streams"]["e"]["failed"] == 1 and final["streams"]["e"]["published"] == 0


class _EmptySource:
    """A source that has already ended (the pipeline then only drains its queue)."""

    kind = "test"

    def __init__(self, stream_id):
        self.stream_id, self.description, self.counters = stream_id, "ended source", {}

    def chunks(self, stop):
        return iter(())

    def close(self):
        pass


def test_noise_between_sentences_does_not_derail_the_stream(recognizer, dialogue, tmp_path):
    rng = np.random.default_rng(3)
    noise = (0.08 * rng.standard_normal(16000 * 2)).astype(np.float32)
    gap = np.zeros(16000, np.float32)
    first = dialogue.audio[: int((dialogue.spans[0][1] + 0.6) * 16000)]
    second = dialogue.audio[int((dialogue.spans[1][0] - 0.4) * 16000): int((dialogue.spans[1][1] + 0.6) * 16000)]
    audio = np.concatenate([first, gap, noise, gap, second])
    path = tmp_path / "noisy.wav"
    sf.write(path, audio, 16000)
    sink = Collect()
    run_in_thread(Pipeline(recognizer, [FileSource(path, "n", realtime=False)], [sink], PipelineConfig(max_pending=8)))
    emotions = [m for _, m in sink.messages if m["type"] == "emotion"]
    spoken = [m for m in emotions if m["transcript"]]
    assert len(spoken) == 2, [m["transcript"] for m in emotions]
    # the noise burst either is not an utterance or is published with no words (the SEC side alone)
    assert all(m["transcript"] == "" for m in emotions if m not in spoken)
    assert [m["seq"] for m in emotions] == list(range(1, len(emotions) + 1))


def test_a_file_read_as_fast_as_possible_waits_instead_of_dropping(recognizer, dialogue):
    sink = Collect()
    run_in_thread(Pipeline(recognizer, [FileSource(dialogue.path, "f", realtime=False)], [sink],
                           PipelineConfig(max_pending=1)))
    final = [m for _, m in sink.messages if m["type"] == "status"][-1]["streams"]["f"]
    assert final["dropped"] == 0 and final["published"] == final["utterances"] == len(dialogue.sentences)


def _words(text: str) -> list[str]:
    return [w.strip(",.?!").lower() for w in text.split()]


@pytest.mark.slow  # a recording played in real time
def test_partials_then_a_speculative_final_over_zeromq(recognizer, dialogue, endpoint):
    """Real-time file, partials every 0.5 s: schema-valid, in order, stable words never retracted,
    every partial before its final, and finals ready at the close because recognition started early."""
    from emostream.clients.subscriber import PartialEvent
    from emostream.streaming.segmenter import SegmenterConfig

    sub, events, thread = subscribe_all(endpoint, status=True, partials=True)
    cfg = PipelineConfig(status_interval_s=0.5, segmenter=SegmenterConfig(partial_interval_s=0.5))
    pipeline = Pipeline(recognizer, [FileSource(dialogue.path, "live", realtime=True)], [], cfg,
                        publisher=Publisher(endpoint))
    run_in_thread(pipeline)
    thread.join(10)
    sub.close()
    finals = [e for e in events if isinstance(e, EmotionEvent)]
    assert [e.seq for e in finals] == list(range(1, len(dialogue.sentences) + 1))
    assert all(validate(e.message)["final"] is True for e in finals)
    for final, (start, end) in zip(finals, dialogue.spans):
        partials = [e for e in events if isinstance(e, PartialEvent) and e.seq == final.seq]
        if end - start > 1.5:
            assert partials, f"no partial while sentence {final.seq} ({end - start:.1f} s) was spoken"
        assert all(events.index(p) < events.index(final) for p in partials), "a partial came after its final"
        assert [p.audio_s for p in partials] == sorted(set(p.audio_s for p in partials))
        for before, after in zip(partials, partials[1:]):
            assert _words(after.stable)[:len(_words(before.stable))] == _words(before.stable), "stable words changed"
        for p in partials:
            validate(p.message)
            assert p.topic == "partial.live" and p.message["final"] is False
            assert p.transcript == " ".join(x for x in (p.stable, p.unstable) if x)
            assert sum(p.probs.values()) == pytest.approx(1, abs=1e-3)
    heard_early = [e for e in finals if e.message["speculated"]]
    assert heard_early, "an idle worker should have started every final at the end candidate"
    assert all(e.timings_ms["head_start"] > 0 for e in heard_early)
    counts = [e for e in events if isinstance(e, StatusEvent)][-1].streams["live"]
    assert counts["speculated"] == len(heard_early) and counts["published"] == len(finals)
    assert counts["partials"] == sum(isinstance(e, PartialEvent) for e in events)


def test_a_speculative_final_is_discarded_when_speech_resumes(recognizer, speech, tmp_path):
    """A 200 ms pause announces an end candidate (after 90 ms) but does not close (300 ms): the work
    started on the first half is thrown away and the final covers both halves."""
    from emostream.streaming.segmenter import SegmenterConfig

    gap = np.zeros(int(0.2 * 16000), np.float32)
    audio = np.concatenate([np.zeros(8000, np.float32), speech["happy"], gap, speech["sad"], np.zeros(16000, np.float32)])
    sf.write(tmp_path / "pause.wav", audio, 16000)
    sink = Collect()
    cfg = PipelineConfig(segmenter=SegmenterConfig(speculate_silence_ms=90, end_silence_ms=300, partial_interval_s=0))
    run_in_thread(Pipeline(recognizer, [FileSource(tmp_path / "pause.wav", "p", realtime=True)], [sink], cfg))
    finals = [m for _, m in sink.messages if m["type"] == "emotion"]
    status = [m for _, m in sink.messages if m["type"] == "status"][-1]["streams"]["p"]
    assert status["speculation_discarded"] >= 1
    last = finals[-1]
    assert last["utterance"]["end_s"] > 0.5 + (len(speech["happy"]) + len(gap)) / 16000, "the final spans the pause"
    assert status["published"] == len(finals) and not any(m["type"] == "partial" for _, m in sink.messages)
