"""Speech synthesis with eSpeak NG (the library and voice data shipped by the `espeakng-loader` wheel).

The C API is called through ctypes with a synth callback, so no system install of espeak-ng is
needed. eSpeak NG keeps global state, so one process-wide engine is used and guarded by a lock.

Determinism: eSpeak NG draws noise (the breath of voices such as `en-us+f2`) from its own random generator,
which starts from the clock: unseeded, two generations a second apart differed by a few samples per utterance
(and then in timing). `espeak_ng_SetRandSeed` before every utterance makes the audio exact under the corpus
seed, byte for byte across interpreters and machines with the same eSpeak NG build. What an utterance sounds
like still depends on the utterances synthesized before it in the same process (eSpeak keeps prosodic
state), so each conversation is synthesized in order, in a process of its own (`rendering.map_in_fresh_processes`).
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 0x02
ESPEAK_CHARS_UTF8 = 1
ESPEAK_SSML = 0x10
ESPEAK_RATE, ESPEAK_VOLUME, ESPEAK_PITCH, ESPEAK_RANGE = 1, 2, 3, 4
POS_CHARACTER = 1
RAND_SEED = 0  # eSpeak NG's noise generator, reset before every utterance

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class Voice:
    """A speaker's voice: an eSpeak voice name (with optional `+variant`), base pitch 0-100, rate in wpm."""

    name: str = "en-us"
    pitch: int = 50
    rate: int = 170
    pitch_range: int = 50


class _Engine:
    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.sample_rate = self.lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0
        )
        if self.sample_rate <= 0:
            raise RuntimeError(f"eSpeak NG failed to initialise (espeak_Initialize returned {self.sample_rate})")
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._on_samples)  # keep a reference: ctypes does not
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _on_samples(self, wav, n_samples, _events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0

    def synth(self, text: str, voice: Voice, ssml: bool) -> np.ndarray:
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise ValueError(f"unknown eSpeak voice {voice.name!r}")
            self.lib.espeak_SetParameter(ESPEAK_RATE, voice.rate, 0)
            self.lib.espeak_SetParameter(ESPEAK_PITCH, voice.pitch, 0)
            self.lib.espeak_SetParameter(ESPEAK_RANGE, voice.pitch_range, 0)
            self._chunks = []
            self.lib.espeak_ng_SetRandSeed(ctypes.c_long(RAND_SEED))
            data = text.encode("utf-8") + b"\0"
            flags = ESPEAK_CHARS_UTF8 | (ESPEAK_SSML if ssml else 0)
            err = self.lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, flags, None, None)
            if err != 0:
                raise RuntimeError(f"eSpeak NG synthesis failed (error {err}) for {text!r}")
            self.lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32) / 32768.0


_engine: _Engine | None = None



def _get_engine() -> _Engine:
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def sample_rate() -> int:
    return _get_engine().sample_rate


def speak(text: str, voice: Voice = Voice(), ssml: bool = False) -> np.ndarray:
    """Synthesize `text` (plain or SSML) and return mono float32 samples at `sample_rate()`."""
    if not text.strip():
        raise ValueError("cannot synthesize empty text")
    return _get_engine().synth(text, voice, ssml)
