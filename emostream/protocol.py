"""The wire contract: topics, message builders and the versioned JSON Schemas (``schemas/``).

Every message is built here and nowhere else, so what is published is what the schema says; the
pipeline, the cluster, the sinks and the clients all import it (it imports none of them).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
EMOTION_SCHEMA_ID = "urn:emostream:schema:emotion:1"
STATUS_SCHEMA_ID = "urn:emostream:schema:status:1"
PARTIAL_SCHEMA_ID = "urn:emostream:schema:partial:1"
SCHEMA_VERSION = "1.7"
EMOTION_TOPIC_PREFIX = "emotion."
PARTIAL_TOPIC_PREFIX = "partial."
STATUS_TOPIC = "status"
GONE_TOPIC_PREFIX = "gone."  # cluster only: an utterance that will get no result (dropped, failed)
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"  # where the ZeroMQ publisher binds and subscribers connect
_FILES = {EMOTION_SCHEMA_ID: "emotion-1.schema.json", STATUS_SCHEMA_ID: "status-1.schema.json",
          PARTIAL_SCHEMA_ID: "partial-1.schema.json"}


class MessageError(ValueError):
    """A message that does not match its schema (or names no schema we know)."""


@cache
def schema(schema_id: str) -> dict[str, Any]:
    if schema_id not in _FILES:
        raise MessageError(f"unknown schema {schema_id!r}; this emostream knows {sorted(_FILES)}")
    return json.loads((SCHEMA_DIR / _FILES[schema_id]).read_text())


@cache
def _validator(schema_id: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema(schema_id))


def validate(message: dict[str, Any]) -> dict[str, Any]:
    """Raise MessageError naming the first problem; return the message unchanged if valid."""
    validator = _validator(str(message.get("schema")))
    error = jsonschema.exceptions.best_match(validator.iter_errors(message))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(message)"
        raise MessageError(f"{where}: {error.message}")
    return message


def emotion_topic(stream_id: str) -> str:
    return EMOTION_TOPIC_PREFIX + stream_id


def partial_topic(stream_id: str) -> str:
    return PARTIAL_TOPIC_PREFIX + stream_id


def gone_topic(stream_id: str) -> str:
    return GONE_TOPIC_PREFIX + stream_id


def gone_message(utterance, outcome: str, reason: str, worker: str | None) -> dict[str, Any]:
    """An utterance that will get no result (``outcome``: dropped or failed): a cluster's ordering
    stops waiting for its seq."""
    return {"type": "gone", "outcome": outcome, "stream_id": utterance.stream_id, "seq": utterance.seq,
            "session": utterance.session, "reason": reason, "worker": worker}


def _emotion_fields(result) -> dict[str, Any]:
    return {"label": result.label, "confidence": round(result.confidence, 5),
            "probs": {k: round(v, 5) for k, v in result.probs.items()},
            "valence": round(result.valence, 4), "arousal": round(result.arousal, 4),
            **({"words": {"valence": round(result.words_va[0], 4), "arousal": round(result.words_va[1], 4)}}
               if getattr(result, "words_va", None) else {})}


def _timings(timings_ms: dict[str, float]) -> dict[str, float]:
    return {k: round(max(0.0, v), 2) for k, v in timings_ms.items()}


def partial_message(audio_so_far, result, stable: str, unstable: str, timings_ms: dict[str, float],
                    published_at: float) -> dict[str, Any]:
    """The open utterance so far (an Utterance snapshot) + its EmotionResult -> partial message."""
    return {
        "schema": PARTIAL_SCHEMA_ID, "schema_version": SCHEMA_VERSION, "type": "partial", "final": False,
        "stream_id": audio_so_far.stream_id, "seq": audio_so_far.seq,
        **({"session": audio_so_far.session} if audio_so_far.session else {}), "audio_s": round(audio_so_far.duration_s, 3),
        "utterance": {"start_s": round(audio_so_far.start_s, 3), "end_s": round(audio_so_far.end_s, 3)},
        "transcript": " ".join(t for t in (stable, unstable) if t), "stable": stable, "unstable": unstable,
        **_emotion_fields(result), "timings_ms": _timings(timings_ms), "published_at": published_at,
    }


def emotion_message(utterance, result, timings_ms: dict[str, float], published_at: float,
                    asr_context: str = "full", speculated: bool = False,
                    worker: dict[str, Any] | None = None, batch: int = 1) -> dict[str, Any]:
    """Utterance (streaming.frames) + EmotionResult (engine.recognizer) -> emotion message."""
    return {
        "schema": EMOTION_SCHEMA_ID, "schema_version": SCHEMA_VERSION, "type": "emotion", "final": True,
        "stream_id": utterance.stream_id, "seq": utterance.seq,
        **({"session": utterance.session} if utterance.session else {}),
        "utterance": {"start_s": round(utterance.start_s, 3), "end_s": round(utterance.end_s, 3),
                      "duration_s": round(utterance.duration_s, 3), "vad_closed_at": utterance.closed_wall,
                      "forced_cut": utterance.forced_cut, "turn_fragments": utterance.turn_fragments,
                      "turn_first_seq": utterance.turn_first_seq or utterance.seq},
        **_emotion_fields(result),
        "transcript": result.transcript, "asr_confidence": round(result.asr_confidence, 4),
        "asr_context": asr_context, "model_ids": dict(result.model_ids),
        "timings_ms": _timings(timings_ms), "speculated": speculated, "batch": batch,
        **({"worker": worker} if worker else {}),
        "published_at": published_at,
    }
