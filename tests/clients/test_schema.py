"""The wire format: schema files, message builders and the subscriber's handling of bad input."""

from __future__ import annotations

import copy
import json
import threading
import time

import numpy as np
import pytest
import zmq

from emostream import protocol as schema
from emostream.sinks.monitor import COLOURS
from emostream.protocol import MessageError, emotion_message, validate
from emostream.clients.subscriber import Subscriber
from emostream.engine.recognizer import EmotionResult
from emostream.labels import LABELS
from emostream.streaming.frames import Utterance


def sample_message(seq: int = 1) -> dict:
    utt = Utterance("desk", seq, 1.25, 3.5, np.zeros(36000, np.float32), time.time(), time.perf_counter())
    probs = dict.fromkeys(LABELS, 0.05)
    probs["happy"] = 0.7
    result = EmotionResult("happy", 0.7, probs, 0.6, 0.4, "what a day", 0.9, {},
                           {"emostream": "m", "asr": "a", "sec": "s", "text": "t"})
    timings = dict.fromkeys(("queue_wait", "sec", "asr", "text", "fusion", "branches", "sec_asr_overlap",
                             "vad_close_to_publish"), 1.0)
    return emotion_message(utt, result, timings, time.time())


def test_schema_files_are_valid_and_match_the_label_set():
    for sid in (schema.EMOTION_SCHEMA_ID, schema.STATUS_SCHEMA_ID, schema.PARTIAL_SCHEMA_ID):
        s = schema.schema(sid)
        jsonschema = pytest.importorskip("jsonschema")
        jsonschema.Draft202012Validator.check_schema(s)
        assert s["$id"] == sid
    emotion = schema.schema(schema.EMOTION_SCHEMA_ID)
    assert emotion["properties"]["label"]["enum"] == list(LABELS)
    assert emotion["properties"]["probs"]["required"] == list(LABELS)
    assert set(COLOURS) == set(LABELS)
    partial = schema.schema(schema.PARTIAL_SCHEMA_ID)
    assert partial["properties"]["probs"] == emotion["properties"]["probs"]


def test_built_message_validates_and_broken_ones_name_the_field():
    m = sample_message()
    assert validate(m) is m
    assert json.loads(json.dumps(m)) == m
    for path, value, where in ((("label",), "joyful", "label"), (("seq",), 0, "seq"),
                               (("probs", "happy"), 1.5, "probs/happy"),
                               (("timings_ms", "vad_close_to_publish"), -3, "timings_ms/vad_close_to_publish")):
        bad = copy.deepcopy(m)
        target = bad
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(MessageError, match=where):
            validate(bad)
    bad = copy.deepcopy(m)
    del bad["transcript"]
    with pytest.raises(MessageError, match="transcript"):
        validate(bad)
    validate({**m, "speaker": "alice", "utterance": {**m["utterance"], "snr_db": 21.5}})  # 1.x additions pass
    with pytest.raises(MessageError, match="unknown schema"):
        validate({**m, "schema": "urn:emostream:schema:emotion:2"})


def test_subscriber_skips_foreign_messages_counts_gaps_and_times_out(endpoint):
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.bind(endpoint)
    with Subscriber(endpoint, timeout_s=2) as sub:
        time.sleep(0.3)

        def send():
            pub.send_multipart([b"emotion.desk", b"not json"])
            pub.send_multipart([b"emotion.desk", b"[1, 2]"])
            pub.send_multipart([b"emotion.desk", json.dumps({"hello": 1}).encode()])
            for seq in (1, 2, 5):
                pub.send_multipart([b"emotion.desk", json.dumps(sample_message(seq)).encode()])

        threading.Thread(target=send).start()
        got = [sub.recv(), sub.recv(), sub.recv()]
        assert [e.seq for e in got] == [1, 2, 5] and got[0].label == "happy"
        assert sub.invalid == 3 and sub.missed == {"desk": 2}
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="no emostream message"):
            sub.recv(timeout_s=0.3)
        assert time.monotonic() - t0 < 2
    pub.close(0)


def test_subscriber_stream_filter_is_exact(endpoint):
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.bind(endpoint)
    with Subscriber(endpoint, streams=["desk"], timeout_s=1) as sub:
        time.sleep(0.3)
        other = sample_message()
        other["stream_id"] = "desk2"
        pub.send_multipart([b"emotion.desk2", json.dumps(other).encode()])
        pub.send_multipart([b"emotion.desk", json.dumps(sample_message()).encode()])
        events = list(sub)
    assert [e.stream_id for e in events] == ["desk"]
    pub.close(0)


def test_a_turn_message_validates_and_replaces_its_fragments_in_the_monitor():
    import io

    from rich.console import Console

    from emostream.sinks.monitor import Monitor

    first = sample_message(seq=1)
    other = sample_message(seq=1)
    other["stream_id"] = "phone"
    turn = sample_message(seq=2)
    turn["utterance"].update(turn_fragments=2, turn_first_seq=1)
    for m in (first, other, turn):
        validate(m)
    assert first["utterance"]["turn_fragments"] == 1 and first["utterance"]["turn_first_seq"] == 1
    monitor = Monitor("t", console=Console(file=io.StringIO()))
    for m in (first, other, turn):
        monitor.emit(f"emotion.{m['stream_id']}", m)
    assert [(m["stream_id"], m["seq"]) for m in monitor._history] == [("desk", 2), ("phone", 1)]


def test_subscriber_events_say_which_fragments_a_turn_revises():
    from emostream.clients.subscriber import EmotionEvent

    turn = sample_message(seq=3)
    turn["utterance"].update(turn_fragments=2, turn_first_seq=2)
    assert list(EmotionEvent.from_message("emotion.desk", turn, 0.0).revises) == [2]
    assert list(EmotionEvent.from_message("emotion.desk", sample_message(seq=4), 0.0).revises) == []
    old = sample_message(seq=5)
    del old["utterance"]["turn_fragments"], old["utterance"]["turn_first_seq"]  # a 1.0 publisher
    assert list(EmotionEvent.from_message("emotion.desk", old, 0.0).revises) == []


def sample_partial(seq: int = 2, stable: str = "what a", unstable: str = "day") -> dict:
    so_far = Utterance("desk", seq, 1.25, 2.75, np.zeros(24000, np.float32), time.time(), time.perf_counter())
    probs = dict.fromkeys(LABELS, 0.1)
    probs["neutral"] = 0.4
    result = EmotionResult("neutral", 0.4, probs, 0.1, 0.0, "what a day", 0.8, {}, {})
    return schema.partial_message(so_far, result, stable, unstable, {"audio_to_publish": 120.0, "asr": 80.0},
                                  time.time())


def test_partial_messages_validate_and_the_final_replaces_them_in_the_monitor():
    import io

    from rich.console import Console

    from emostream.sinks.monitor import Monitor
    from emostream.clients.subscriber import PartialEvent

    partial = validate(sample_partial())
    assert partial["final"] is False and partial["transcript"] == "what a day" and partial["audio_s"] == 1.5
    assert validate(sample_message(seq=1))["final"] is True
    event = PartialEvent.from_message("partial.desk", partial, 0.0)
    assert (event.stable, event.unstable, event.seq) == ("what a", "day", 2)
    bad = copy.deepcopy(partial)
    bad["final"] = True
    with pytest.raises(MessageError, match="final"):
        validate(bad)

    console = Console(file=io.StringIO(), width=120)
    monitor = Monitor("t", console=console)
    monitor.emit("emotion.desk", sample_message(seq=1))
    monitor.emit("partial.desk", partial)
    console.print(monitor.render())
    assert "speaking, 1.5 s so far" in console.file.getvalue() and "what a day" in console.file.getvalue()
    monitor.emit("emotion.desk", sample_message(seq=2))
    assert not monitor._partial and monitor._current["desk"]["seq"] == 2
    assert [m["seq"] for m in monitor._history] == [2, 1]  # partials never enter the history


def test_subscriber_yields_partials_only_when_asked(endpoint):
    from emostream.clients.subscriber import EmotionEvent, PartialEvent

    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.bind(endpoint)
    with Subscriber(endpoint, timeout_s=1.0, partials=True) as both, Subscriber(endpoint, timeout_s=1.0) as finals:
        time.sleep(0.3)
        pub.send_multipart([b"partial.desk", json.dumps(sample_partial()).encode()])
        pub.send_multipart([b"emotion.desk", json.dumps(sample_message(seq=2)).encode()])
        got_both, got_finals = list(both), list(finals)
    pub.close(0)
    assert [type(e) for e in got_both] == [PartialEvent, EmotionEvent]
    assert [type(e) for e in got_finals] == [EmotionEvent]
