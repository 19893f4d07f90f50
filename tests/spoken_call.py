"""A two-channel call spoken by eSpeak NG with one of each turn-taking event (tests of the label stage and the calls
source)."""

import numpy as np
import pandas as pd
import soundfile as sf

from turnfusion.choices import BACKCHANNEL, KEEP, SHIFT
from turnfusion.data.sources import speech
from turnfusion.data.sources.rendering import trim_silence

RATE = 16000
# (channel, text, start relative to the previous clip's end): one of each event, as in tests/test_turn_events.py
SCRIPT = [(0, "we went to the market yesterday", 0.5),
          (1, "yeah", 0.1),  # a backchannel: the speaker goes on
          (0, "and it was really nice", 0.9),  # kept: the speaker goes on after silence
          (0, "did you go there", 0.6),  # a shift: the listener answers
          (1, "yes i went there last week with my sister", 0.4),
          (0, "oh and what did you buy there", -0.6),  # a barge-in: begins before the other's end, who stops
          (1, "some bread and cheese", 0.5),
          (0, "that sounds really good to me", 1.0)]  # the recording ends
EXPECTED = [BACKCHANNEL, KEEP, SHIFT, SHIFT, SHIFT, SHIFT]


def spoken_call(folder, name: str = "call1"):
    """Write `<name>.flac` (stereo) and `mono1.flac` (its mix) into `folder`; returns (its transcript as pieces with
    a video_id, the stereo samples)."""
    voices = [speech.Voice("en-us+m3", pitch=40), speech.Voice("en-us+f2", pitch=60)]
    clips, timeline, t = [], [], 0.0
    for channel, text, gap in SCRIPT:
        clip = trim_silence(speech.speak(text, voices[channel]))
        clip = np.interp(np.arange(0, len(clip), speech.sample_rate() / RATE), np.arange(len(clip)), clip)
        start = t + gap
        clips.append((channel, start, clip))
        timeline.append({"speaker": channel, "start": round(start, 3), "end": round(start + len(clip) / RATE, 3),
                         "text": text})
        t = start + len(clip) / RATE
    audio = np.zeros((int((t + 1.0) * RATE), 2), dtype=np.float32)
    for channel, start, clip in clips:
        i = int(start * RATE)
        audio[i:i + len(clip), channel] += clip
    audio += np.random.default_rng(0).normal(0, 1e-3, audio.shape).astype(np.float32)
    sf.write(folder / f"{name}.flac", audio, RATE)
    sf.write(folder / "mono1.flac", audio.mean(axis=1), RATE)
    return pd.DataFrame(timeline).assign(video_id=name), audio
