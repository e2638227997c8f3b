"""Audio sources: microphone (sounddevice), files, raw PCM on stdin. All yield 16 kHz mono chunks."""

from emostream.streaming.sources.base import AudioSource, SourceError
from emostream.streaming.sources.file import FileSource
from emostream.streaming.sources.microphone import MicrophoneSource, list_input_devices, resolve_input_device
from emostream.streaming.sources.stdin import StdinSource

__all__ = ["AudioSource", "SourceError", "FileSource", "MicrophoneSource", "StdinSource",
           "list_input_devices", "resolve_input_device"]
