"""The ``emostream`` command line: every subcommand, its flags and its help."""

from __future__ import annotations

import argparse
import os

from emostream.cli import commands
from emostream.engine.asr import CONTEXTS, ASRConfig  # numpy only: keeps --help fast
from emostream.engine.backends import BACKENDS  # numpy only

EXAMPLES = """examples:
  emostream classify --sample --format table    the two shipped demo clips
  emostream classify speech.wav                 one JSON line per file
  emostream classify a.flac b.mp3 --format table
  emostream listen                              the default microphone, live view, results on ZeroMQ
  emostream listen --device 2 --quiet           microphone #2 (see `emostream devices`), no display
  emostream listen --input talk.wav --fast      segment and classify a recording as fast as possible
  arecord -f S16_LE -r 16000 | emostream listen --input - --rate 16000
  emostream subscribe                           print the results another emostream publishes
  emostream train --out runs/mine               retrain the default model (needs ../shared/data)
"""


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="emostream bundle (stem, .json or directory); default: the shipped model")
    p.add_argument("--asr-model", default=None,
                   help="faster-whisper model: a local CTranslate2 directory or a hub name (online only); "
                        "default: bundled tiny.en")
    p.add_argument("--compute", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where the ASR runs (default: auto = CUDA when CTranslate2 sees a GPU)")
    p.add_argument("--asr-context", default=ASRConfig.context, choices=CONTEXTS,
                   help="real (default): the utterance padded with silence to >= 10 s through CTranslate2, ~3x "
                        "faster than the 30 s window and as accurate, falling back to the full window when the short "
                        "decode runs away or may be no speech; full: faster-whisper's 30 s window (docs/design.md 'ASR context')")
    p.add_argument("--threads", type=int, default=_threads(), help="CPU threads for the models (default: %(default)s)")
    p.add_argument("--sec-backend", default="auto", choices=BACKENDS,
                   help="how the SEC encoder runs (default auto: TensorRT > ONNX Runtime CUDA > ONNX Runtime CPU > "
                        "torch, whichever works here first)")
    p.add_argument("--fusion", default="fixed", metavar="{fixed,searched,PATH}",
                   help="how the two perspectives are fused: fixed (default: the engine's trust-gated fusion), "
                        "searched (the MFSN cell found by `emostream search`, shipped with the package; it reads "
                        "the SEC frame sequence, so SEC runs on torch), or the path of a cell written by "
                        "`emostream search` (its fusion-searched.json). See docs/fusion_search.md.")


def _nats_flags(p: argparse.ArgumentParser, edge: bool = False) -> None:
    g = p.add_argument_group("NATS (cluster mode; README 'Cluster')")
    default = os.environ.get("EMOSTREAM_NATS_URL", "nats://127.0.0.1:4222")
    if edge:
        g.add_argument("--nats", default=None, metavar="URL",
                       help="edge mode: segment here, send utterances to `emostream worker`s on this NATS server "
                            "(JetStream), and show/publish the results that come back; no models load here")
    else:
        g.add_argument("--nats", default=default, metavar="URL",
                       help="NATS server(s), comma-separated; tls:// for TLS (default %(default)s, or $EMOSTREAM_NATS_URL)")
    g.add_argument("--nats-token", default=None, help="NATS auth token (or $EMOSTREAM_NATS_TOKEN)")
    g.add_argument("--nats-user", default=None, help="NATS user (password: --nats-password or $EMOSTREAM_NATS_PASSWORD)")
    g.add_argument("--nats-password", default=None, help=argparse.SUPPRESS)
    g.add_argument("--nats-creds", default=None, metavar="FILE", help="NATS credentials file (JWT + nkey)")
    g.add_argument("--nats-tls-ca", default=None, metavar="FILE", help="CA bundle for a tls:// NATS server")
    g.add_argument("--nats-connect-timeout", type=float, default=5.0, metavar="S",
                   help="give up if the server cannot be reached at start within S seconds (default %(default)s; "
                        "once connected, a lost server is reconnected forever)")
    from emostream.cluster.wire import BusConfig

    b = BusConfig()
    g.add_argument("--ack-wait", type=float, default=b.ack_wait_s, metavar="S",
                   help="an utterance a worker took and did not finish (it died) goes to another worker after S "
                        "seconds (default %(default)s)")
    g.add_argument("--max-deliver", type=int, default=b.max_deliver, metavar="N",
                   help="attempts per utterance before it is counted failed (default %(default)s)")
    g.add_argument("--max-lag", type=float, default=b.max_lag_s, metavar="S",
                   help="drop (and count) an utterance still waiting for a worker S seconds after it ended, so "
                        "an overloaded cluster answers the present; not a redelivery (a worker died holding it) and "
                        "not a file read with --fast (default %(default)s)")
    g.add_argument("--backlog", type=int, default=b.backlog_per_stream, metavar="N",
                   help="utterances stored per stream on the server before new ones are refused and counted "
                        "(default %(default)s; set when the stream is first created, by whichever process starts "
                        "first; change it later with `nats stream edit EMOSTREAM_UTT`)")
    g.add_argument("--replicas", type=int, default=b.replicas, metavar="N",
                   help="on a NATS cluster: keep N copies of the queued utterances (3 survives losing one server; "
                        "default %(default)s; like --backlog, set by the process that creates the streams)")


def _curve_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ZeroMQ CURVE (encrypted, authenticated PUB socket; docs/protocol.md 'Security')")
    g.add_argument("--curve-secret-key", default=None, metavar="FILE",
                   help="this publisher's NAME.key_secret (from `emostream keys`); subscribers then need its "
                        "NAME.key (`emostream subscribe --curve-server-key`)")
    g.add_argument("--curve-clients", default=None, metavar="DIR",
                   help="only subscribers whose public NAME.key files are in DIR (default: any that know the "
                        "server key)")


def _server_flags(p: argparse.ArgumentParser) -> None:
    """The WebSocket server's flags: ``serve`` and ``gateway`` (web.gateway.GatewayConfig)."""
    p.add_argument("--listen", default="127.0.0.1:8765", metavar="HOST:PORT",
                   help="where to serve the page and accept WebSocket clients (default %(default)s: this machine "
                        "only; port 0 = any free port)")
    p.add_argument("--token", default=None,
                   help="require 'Authorization: Bearer TOKEN' (or ?token=TOKEN; the page has a field) from clients "
                        "(or $EMOSTREAM_GATEWAY_TOKEN)")
    p.add_argument("--tls-cert", default=None, metavar="PEM",
                   help="serve https:// and wss:// with this certificate chain (browsers give the microphone only "
                        "to https pages, or to http://localhost)")
    p.add_argument("--tls-key", default=None, metavar="PEM", help="its private key")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="let pages from ORIGIN (e.g. https://app.example.com; '*' = any) use the stream endpoint; "
                        "by default only the page this server serves may (repeatable)")
    p.add_argument("--max-streams", type=int, default=64, help="concurrent streams before 1013 (default %(default)s)")
    p.add_argument("--ws-compression", action="store_true",
                   help="accept permessage-deflate when a client offers it (off by default: audio does not compress, "
                        "and each compressed connection holds zlib state)")


def _serve_parser(sub) -> None:
    from emostream.streaming.segmenter import SegmenterConfig

    d = SegmenterConfig()
    p = sub.add_parser(
        "serve", help="a page in the browser: talk into the microphone and watch the emotion live (one process)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Load the models once and serve, on one port, a web page (/) that streams the browser's "
                    "microphone or an audio file and draws every result live (words, emotion, a timeline of "
                    "the class probabilities, valence and arousal), and the WebSocket protocol of `emostream "
                    "gateway` (/v1/stream) for programs. Everything runs in this process: no NATS needed.",
        epilog="then open the URL it prints, e.g. http://127.0.0.1:8765/ (watch another stream: /?watch=ID)\n"
               "protocol: a text start message {\"stream_id\": \"call-17\", \"rate\": 16000, \"format\": "
               "\"s16le\", \"channels\": 1},\nbinary audio frames, then {\"type\": \"end\"}; results come back as "
               "JSON (README, 'A page in the browser').\n"
               "close codes: 1000 done, 1001 shutting down, 1008 bad start/frame or nothing sent in time, "
               "1009 frame too large, 1013 overloaded (try again later)")
    _server_flags(p)
    p.add_argument("--publish", default=None, metavar="ENDPOINT",
                   help="also publish every result on a ZeroMQ PUB socket bound here, as `listen` does (e.g. "
                        "tcp://127.0.0.1:5556; default: off)")
    _curve_flags(p)
    p.add_argument("--partial-interval", type=float, default=0.5, metavar="S",
                   help="while someone speaks, a partial result every S s of new speech (default %(default)s; 0 = off)")
    p.add_argument("--speculate-silence-ms", type=int, default=d.speculate_silence_ms,
                   help="start the final recognition after this much trailing silence, before the utterance "
                        "closes (default %(default)s ms; 0 = wait for the close)")
    p.add_argument("--end-silence-ms", type=int, default=d.end_silence_ms,
                   help="pause that ends an utterance (default %(default)s ms)")
    p.add_argument("--max-pending", type=int, default=_pipeline_defaults().max_pending,
                   help="utterances waiting for the models before the oldest is dropped (default %(default)s)")
    _recognition_flags(p)
    p.add_argument("--status-interval", type=float, default=2.0, help="seconds between status heartbeats")
    _model_flags(p.add_argument_group("models"))
    p.set_defaults(func=commands.cmd_serve)


def _pipeline_defaults():
    from emostream.streaming.pipeline import PipelineConfig

    return PipelineConfig()


def _recognition_flags(p) -> None:
    """How this process's workers take and recognize utterances (listen, serve, worker)."""
    p.add_argument("--concurrency", type=int, default=_pipeline_defaults().workers, metavar="N",
                   help="utterances recognized at once by this process, sharing one copy of the models (the ASR "
                        "decodes them side by side on shared weights, --threads each); a stream's finals still "
                        "leave in order. On 2 cores 2 kept up with more streams (24) but was slower below that "
                        "(docs/benchmarks.md) (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=_pipeline_defaults().batch_size, metavar="N",
                   help="when finals pile up (N/2 waiting on a CPU, any with CUDA ASR), recognize up to N ready "
                        "utterances of any streams together, finals first; otherwise one at a time, so a lone one "
                        "never waits for company (default %(default)s; 1 = never batch)")


def _listen_parser(sub) -> None:
    from emostream.protocol import DEFAULT_ENDPOINT
    from emostream.streaming.segmenter import SegmenterConfig

    d = SegmenterConfig()
    p = sub.add_parser(
        "listen", help="live: segment audio into utterances, classify each, publish on ZeroMQ, show a monitor",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Listen to one or more inputs, cut them into utterances at pauses (webrtcvad), recognise each "
                    "utterance's emotion from how it sounds (SEC) and what was said (ASR -> TEC) at the same time, "
                    "and publish every result on ZeroMQ (topics emotion.<stream_id> and status). In a terminal a "
                    "live view shows the current emotion, transcript, history and latency. Ctrl-C finishes the "
                    "utterance in progress, publishes it and exits.",
        epilog="inputs:\n  (none)             the default microphone\n"
               "  --device 2         microphone by index or name part (repeat for several)\n"
               "  --input talk.wav   a file (any format libsndfile reads), paced in real time unless --fast\n"
               "  --input -          raw signed 16-bit little-endian PCM on stdin (needs --rate)\n"
               "  --input mic:USB    a microphone, as an input\n"
               "  --input left=a.wav name the stream (topic emotion.left); default: file stem, mic, stdin\n\n"
               "subscribe from another process: emostream subscribe, or see README (Python client).")
    p.add_argument("--input", "-i", action="append", default=[], metavar="SRC", help="file, '-', or mic[:DEVICE]; repeatable")
    p.add_argument("--device", "-d", action="append", default=[], metavar="DEV",
                   help="input device index or name substring (see `emostream devices`); repeatable")
    p.add_argument("--fast", action="store_true", help="read files as fast as possible instead of in real time")
    p.add_argument("--rate", type=int, default=None, help="sample rate of stdin PCM (Hz)")
    p.add_argument("--channels", type=int, default=1, help="channels of stdin PCM (default 1; downmixed)")
    p.add_argument("--publish", default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
                   help="ZeroMQ endpoint to bind the PUB socket to (default %(default)s: this machine only)")
    p.add_argument("--quiet", "-q", action="store_true", help="no live view (headless); errors still go to stderr")
    p.add_argument("--jsonl", metavar="FILE", default=None, help="also append every result to FILE as JSON lines")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop gracefully after S seconds")
    p.add_argument("--exit-on-device-loss", action="store_true",
                   help="end (status 1) when a microphone vanishes; default: publish what it said, report "
                        "'retrying' in status, and reopen it with backoff (0.5 s doubling to 10 s) until it is back")
    g = p.add_argument_group("segmentation (webrtcvad)")
    g.add_argument("--vad-frame-ms", type=int, default=d.frame_ms, choices=(10, 20, 30),
                   help="VAD frame length (default %(default)s ms)")
    g.add_argument("--vad-aggressiveness", type=int, default=d.aggressiveness, choices=(0, 1, 2, 3),
                   help="0 = lets most sound through, 3 = strictest (default %(default)s)")
    g.add_argument("--end-silence-ms", type=int, default=d.end_silence_ms,
                   help="pause that ends an utterance (default %(default)s ms; longer = fewer, longer utterances)")
    g.add_argument("--turn-gap-ms", type=int, default=d.turn_gap_ms,
                   help="speech resuming within this long after an utterance closed continues the same turn: "
                        "its result is recognised over the whole turn so far, so a sentence cut at a short "
                        "pause is judged as a sentence (default %(default)s ms; 0 = every fragment alone)")
    g.add_argument("--pre-roll-ms", type=int, default=d.pre_roll_ms,
                   help="audio kept before the detected onset (default %(default)s ms)")
    g.add_argument("--min-speech-ms", type=int, default=d.min_speech_ms,
                   help="ignore bursts with less speech than this (default %(default)s ms)")
    g.add_argument("--max-utterance-s", type=float, default=d.max_utterance_s,
                   help="force a cut after this long without a pause (default %(default)s s)")
    g = p.add_argument_group("streaming (results before and while the utterance ends)")
    g.add_argument("--partial-interval", type=float, default=0.5, metavar="S",
                   help="while someone speaks, recognise the utterance so far every S seconds of new speech and "
                        "publish it on partial.<stream_id> (schema partial-1: stable + unstable words, emotion so "
                        "far); best effort: the interval stretches as work waits (default %(default)s; 0 = off)")
    g.add_argument("--speculate-silence-ms", type=int, default=d.speculate_silence_ms,
                   help="start the final recognition after this much trailing silence, before --end-silence-ms "
                        "closes the utterance; thrown away if speech resumes (default %(default)s ms; 0 = wait "
                        "for the close)")
    g = p.add_argument_group("pipeline")
    g.add_argument("--max-pending", type=int, default=_pipeline_defaults().max_pending,
                   help="utterances waiting for the models before the oldest is dropped (default %(default)s)")
    _recognition_flags(g)
    g.add_argument("--status-interval", type=float, default=2.0, help="seconds between status heartbeats")
    g = p.add_argument_group("models")
    _model_flags(g)
    _curve_flags(p)
    _nats_flags(p, edge=True)
    p.add_argument("--result-wait", type=float, default=20.0, metavar="S", help=argparse.SUPPRESS)
    p.set_defaults(func=commands.cmd_listen)


def _cluster_parsers(sub) -> None:
    from emostream.protocol import DEFAULT_ENDPOINT

    p = sub.add_parser(
        "worker", help="cluster: recognize utterances from NATS JetStream, publish results on NATS",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Load the models once and take utterances from the JetStream work queue that gateways and "
                    "`listen --nats` fill, in batches of up to --batch-size ready ones per --concurrency (finals first), like "
                    "`listen` does in one process. "
                    "Results go to NATS subjects emostream.emotion.<stream_id> and emostream.partial.<stream_id>; "
                    "the heartbeat to emostream.status.<name>. Start as many as you like, on any machine that "
                    "reaches the NATS server. A killed worker's utterance goes to another after --ack-wait.",
        epilog="example (README 'Cluster'):\n  nats-server -js -a 127.0.0.1 -sd /tmp/nats &\n"
               "  emostream worker & emostream worker &\n  emostream gateway --listen 127.0.0.1:8765 &\n"
               "  emostream bridge        # results on ZeroMQ tcp://127.0.0.1:5556 as from `listen`")
    p.add_argument("--name", default=None, help="worker id in results and status (default worker-HOST-PID)")
    _recognition_flags(p)
    p.add_argument("--no-partials", action="store_true", help="take only finals, never partial snapshots")
    p.add_argument("--status-interval", type=float, default=2.0, help="seconds between status heartbeats")
    _nats_flags(p)
    _model_flags(p.add_argument_group("models"))
    p.set_defaults(func=commands.cmd_cluster, run="run_worker")

    from emostream.streaming.segmenter import SegmenterConfig

    p = sub.add_parser(
        "gateway", help="cluster: network audio in over WebSocket, utterances to workers, results back",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Accept audio streams on ws://HOST:PORT/v1/stream, segment each into utterances, queue them "
                    "on NATS JetStream for `emostream worker`s, and send every result for a stream back on its "
                    "socket (and on the bus). Protocol: a text start message "
                    '{"stream_id": "call-17", "rate": 8000, "format": "mulaw", "channels": 1} '
                    "(format s16le, f32le or mulaw; any rate), binary audio frames, then {\"type\": \"end\"}.",
        epilog="close codes: 1000 done, 1001 shutting down, 1008 bad start/frame or nothing sent in time, "
               "1009 frame too large, 1013 overloaded (try again later)")
    _server_flags(p)
    p.add_argument("--partial-interval", type=float, default=SegmenterConfig().partial_interval_s, metavar="S",
                   help="ask the workers for a partial result every S s of new speech (default %(default)s; 0 = off)")
    p.add_argument("--name", default=None, help="id in status (default gateway-HOST-PID)")
    p.add_argument("--status-interval", type=float, default=2.0, help="seconds between status heartbeats")
    _nats_flags(p)
    p.set_defaults(func=commands.cmd_cluster, run="run_gateway")

    p = sub.add_parser("bridge", help="cluster: re-publish the bus's results on a ZeroMQ PUB socket",
                       description="Subscribe to every result and heartbeat on NATS and publish them on ZeroMQ with "
                                   "the topics and schemas of `emostream listen`, de-duplicated and in seq order "
                                   "per stream, so existing subscribers work unchanged.")
    p.add_argument("--publish", default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
                   help="ZeroMQ endpoint to bind (default %(default)s: this machine only)")
    p.add_argument("--name", default=None, help=argparse.SUPPRESS)
    _curve_flags(p)
    _nats_flags(p)
    p.set_defaults(func=commands.cmd_cluster, run="run_bridge")

    p = sub.add_parser("stream", help="cluster: send an audio file to a gateway and print the results",
                       description="Stream FILE (any format libsndfile reads) to an `emostream gateway` over "
                                   "WebSocket, in real time unless --fast, and print each result it sends back.")
    p.add_argument("file")
    p.add_argument("--gateway", default="ws://127.0.0.1:8765/v1/stream", metavar="URL",
                   help="the gateway's stream endpoint (default %(default)s)")
    p.add_argument("--stream-id", default=None, help="default: the file name's stem")
    p.add_argument("--token", default=None, help="bearer token (or $EMOSTREAM_GATEWAY_TOKEN)")
    p.add_argument("--fast", action="store_true", help="send as fast as possible instead of in real time")
    p.add_argument("--partials", action="store_true", help="also print partial results")
    p.add_argument("--format", choices=("text", "jsonl"), default="text")
    p.set_defaults(func=commands.cmd_stream)

    p = sub.add_parser("keys", help="make a ZeroMQ CURVE key pair (for --curve-secret-key / --curve-server-key)",
                       description="Write DIR/NAME.key (public: give it to subscribers) and DIR/NAME.key_secret "
                                   "(keep it: `listen`/`bridge --curve-secret-key`).")
    p.add_argument("dir")
    p.add_argument("--name", default="server")
    p.set_defaults(func=commands.cmd_keys)


def _subscribe_parser(sub) -> None:
    from emostream.protocol import DEFAULT_ENDPOINT

    p = sub.add_parser("subscribe", help="print the events an emostream listen publishes",
                       description="Connect a SUB socket to a running `emostream listen` and print each event.")
    p.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help="where `listen` publishes (default %(default)s)")
    p.add_argument("--stream", action="append", default=[], metavar="ID", help="only these stream ids; repeatable")
    p.add_argument("--status", action="store_true", help="also print status heartbeats")
    p.add_argument("--partials", action="store_true",
                   help="also print partial results while an utterance is spoken (`listen --partial-interval`)")
    p.add_argument("--format", choices=("text", "jsonl"), default="text", help="text lines (default) or raw JSON")
    p.add_argument("--count", type=int, default=None, metavar="N", help="exit after N emotion events")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="exit with status 1 if no event arrives for S seconds (default: wait forever)")
    p.add_argument("--curve-server-key", default=None, metavar="FILE",
                   help="the publisher's public NAME.key when it uses CURVE (without it you receive nothing)")
    p.add_argument("--curve-client-key", default=None, metavar="FILE",
                   help="this subscriber's NAME.key_secret, when the publisher allows listed clients only")
    p.set_defaults(func=commands.cmd_subscribe)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emostream",
        description="Speech emotion recognition from how it was said (SEC) and what was said (TEC).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and model loading")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("classify", help="classify the emotion of whole audio files (one utterance each)",
                       description="Classify each file as one utterance. Any format libsndfile reads; any sample "
                                   "rate or channel count (resampled to 16 kHz mono). Files that cannot be used get a "
                                   "one-line error on stderr; the others are still classified and the exit status is "
                                   "1 if any failed.")
    p.add_argument("files", nargs="*", metavar="FILE", help="audio files (wav, flac, ogg, mp3, ...)")
    p.add_argument("--sample", action="store_true", help="also classify the demo clips shipped with emostream")
    p.add_argument("--format", choices=("jsonl", "table"), default="jsonl",
                   help="jsonl: one JSON object per line (default); table: a readable table")
    _model_flags(p)
    p.set_defaults(func=commands.cmd_classify)

    _listen_parser(sub)
    _serve_parser(sub)
    _subscribe_parser(sub)
    _cluster_parsers(sub)
    p = sub.add_parser("compile", help="build and cache the SEC encoder for a backend (TensorRT, ONNX Runtime)",
                       description="Export the SEC encoder to ONNX and, for tensorrt, build a TensorRT engine "
                                   "(dynamic length 0.1-30 s, FP16 unless it moves probabilities by more than 0.02 on check "
                                   "clips, then FP32, and that verdict is cached too). Artefacts are cached under $EMOSTREAM_CACHE or ~/.cache/emostream, "
                                   "keyed by model, GPU, TensorRT version, shape profile and precision, so later starts "
                                   "load them instead of building. Then checks the result against torch on the demo clips.")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="default: auto (the one listen would pick)")
    p.add_argument("--model", default=None, help="emostream bundle; default: the shipped model")
    p.add_argument("--cache", default=None, help="cache directory (default: $EMOSTREAM_CACHE or ~/.cache/emostream)")
    p.add_argument("--rebuild", action="store_true",
                   help="TensorRT: build again even if a cached engine exists (FP16 is re-checked too)")
    p.add_argument("--threads", type=int, default=_threads())
    p.set_defaults(func=commands.cmd_compile)

    p = sub.add_parser("bench", help="latency benchmarks: stages per backend, utterances vs baseline, streams",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Measure on real utterances (espeak-ng sentences, RAVDESS clips when ../shared/data "
                                   "exists): per-stage latency per SEC backend (median/p95/p99, real-time factor), "
                                   "VAD close -> published per utterance for emostream, its branches run sequentially, "
                                   "and a RealtimeSTT-style baseline (ASR then text-only emotion), and real-time streams "
                                   "1, 2, 4 ... until the machine falls behind. Writes results.json and two PNGs.",
                       epilog="examples:\n  emostream bench --quick                   under 5 minutes on 2 CPU cores\n"
                              "  emostream bench --out runs/bench/full\n"
                              "  emostream bench --compare old/results.json new/results.json\n"
                              "  emostream bench --cluster --out runs/bench/cluster   about 45 minutes (30 min soak)")
    p.add_argument("--quick", action="store_true", help="fewer utterances, repetitions and streams")
    p.add_argument("--out", default="runs/bench", help="directory for results.json and the PNGs (default %(default)s)")
    p.add_argument("--threads", type=int, default=_threads(), help="CPU threads (ASR all, SEC/text half, as listen)")
    p.add_argument("--concurrency", type=int, default=None, metavar="N",
                   help="recognitions at once in the pipeline sections, as listen --concurrency (default: listen's)")
    p.add_argument("--sec-backend", default="auto", choices=BACKENDS, help="SEC backend for the pipeline sections")
    p.add_argument("--max-streams", type=int, default=None,
                   help="stop the stream scaling here (default 4 with --quick, else 32)")
    p.add_argument("--no-page", action="store_true",
                   help="skip the page section (Chromium with a WAV as its microphone against listen; it is skipped "
                        "with the reason anyway where Chromium or Playwright is missing)")
    p.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"), default=None,
                   help="print new/old ratios of every median/p95/p99 in two results.json files, run nothing")
    p.add_argument("--cluster", action="store_true",
                   help="instead: the cluster on this machine (nats-server, gateway, workers as processes): latency "
                        "vs in process, real-time streams per worker (one at a time vs batched, --concurrency 2, two "
                        "workers), and a soak with RSS; "
                        "writes cluster.json and cluster.png (README 'Cluster')")
    p.add_argument("--soak-minutes", type=float, default=None, metavar="M",
                   help="with --cluster: soak length (default 30; 2 with --quick; 0 = no soak)")
    p.set_defaults(func=commands.cmd_bench)

    p = sub.add_parser("devices", help="list audio input devices", description="List the input devices "
                       "PortAudio sees (index, name, channels, default rate); `listen --device` takes the index "
                       "or a unique part of the name. The default input is marked with *.")
    p.add_argument("--json", action="store_true", help="one JSON object per device")
    p.set_defaults(func=commands.cmd_devices)

    p = sub.add_parser("train", help="train and evaluate the default model on ../shared/data",
                       description="One seeded pipeline, every stage cached: features (Whisper statistics of "
                                   "RAVDESS clean, degraded and as training copies; MELD lines spoken by espeak-ng "
                                   "and Kokoro voices; tiny.en transcripts by the real-length path) -> the words "
                                   "branch (MiniLM fine-tuned on MELD + XED + GoEmotions as ASR writes them) and "
                                   "the voice probe on speaker-independent folds -> the fusion -> a calibrated "
                                   "confidence (fitted on held-out speakers and lines) -> OUT/emostream-default."
                                   "{json,safetensors}, report.json, report.md, reliability.png. Studies (SEC "
                                   "variants, representation study, fusion search) live in experiments/.")
    p.add_argument("--out", default="runs/default", help="output directory for the bundle and report.json")
    p.add_argument("--cache", default=".cache/train", help="feature/stage cache directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=_threads())
    p.set_defaults(func=commands.cmd_train)

    p = sub.add_parser("search", help="MFSN fusion search + its evidence table (needs ../shared/data)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="""Search how speech cues should adjust text cues (MFSN, arXiv 2306.09361) and test
whether the search earns its keep.

1. data: RAVDESS (noise/reverb on a seeded half) + MELD dev/test lines spoken by many espeak-ng
   voices (test lines by voices held out of training), through the real ASR and the shipped
   encoders; cached under --cache (first run ~25 min on 2 cores)
2. evidence on all 5 speaker-independent folds: SEC only, TEC only, the fixed fusion, plain
   concatenation, the searched cell (first-order DARTS on that fold's training part only, then
   derived and retrained), --random-cells random cells (same space, same training)
3. one more search on every actor, retrained: OUT/fusion-searched.{json,safetensors}, loadable
   with `emostream classify --fusion OUT/fusion-searched.json`

Writes genotype.json, search_report.json, table.md, cell.png, architecture_weights.png. Seeded.""")
    p.add_argument("--out", default="runs/search")
    p.add_argument("--cache", default=".cache/train", help="feature and transcript cache (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=20, help="search and retraining epochs (default: %(default)s)")
    p.add_argument("--nodes", type=int, default=3, help="intermediate nodes in the cell (default: %(default)s)")
    p.add_argument("--random-cells", type=int, default=5, help="random cells in the control (default: %(default)s)")
    p.add_argument("--genotype", default=None, help="skip the search: evaluate this genotype.json instead")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=_threads())
    p.set_defaults(func=commands.cmd_search)
    return parser
