"""The barge-in onset gate on speech it was not trained on (figures only), after `dvc repro`: backchannels and
barge-ins spoken by eSpeak NG (its bare en-us voice at two pitches, which the demo never uses, and en-us+f3; clean,
or at the demo's 20 dB SNR), each as a transport would give it (0.5 s of silence, the words, 0.5 s of silence;
16-bit PCM in 20 ms chunks) through the live `OnsetTracker` and the trained gate; beside the time gate alone (speech
still going 0.5 s after pipecat's VAD start, 0.7 s after the onset, with no words yet: what the start strategy does
without the onset gate).

    python bench/barge_in.py [--gate models/onset_gate] [--verbose]

Per condition, with no words recognised yet (the worst case: words that come in time decide before either gate):
backchannels the agent talks on through, and barge-ins that stop it, and when (after the speech's onset), with
the time gate alone and with the onset gate in front of it (the strategy keeps both); and barge-ins that open with a
backchannel word, which the demo's turns never do (what the gate does with them: the price of its speed). Synthetic
speech in a few words: it says how the demo's gate carries over to voices and spellings it did not see, not how a
gate does on real calls.
"""

import argparse

import numpy as np
import soxr

from turnfusion.data.sources import speech
from turnfusion.data.sources.rendering import add_noise, map_in_fresh_processes
from turnfusion.live.onset_gate import VAD_RATE, OnsetGate, OnsetTracker
from turnfusion.threads import thread_count

BACKCHANNELS = ["mm-hmm", "mm-hm", "mhm", "yeah", "uh-huh", "right", "okay"]
BARGE_INS = ["wait, stop", "wait what", "no no no", "hold on", "sorry but"]
# a turn may open with the listener's own backchannel word ("yeah, but ..."), which the demo's turns never do: from
# its first 0.2 s a gate cannot tell it from the backchannel, so these wait for the time gate or the words
BACKCHANNEL_LED = ["yeah but wait", "okay stop", "right, hold on", "mm-hmm no wait"]
VOICES = [speech.Voice("en-us", pitch=50), speech.Voice("en-us", pitch=35), speech.Voice("en-us+f3", pitch=60)]
TIME_GATE_S = 0.7  # pipecat's VAD start (0.2 s) + max_backchannel_s (0.5 s)
CHUNK = 320  # 20 ms at 16 kHz


def clip(text: str, voice: speech.Voice) -> np.ndarray:
    """The words spoken, trimmed to their voiced span; run in a fresh process (eSpeak NG keeps state between
    utterances, so a clip spoken after others would depend on their order)."""
    samples = soxr.resample(speech.speak(text, voice), speech.sample_rate(), VAD_RATE).astype(np.float32)
    voiced = np.flatnonzero(np.abs(samples) > 1e-3)
    samples = samples[voiced[0]: voiced[-1] + 1]
    return 0.9 * samples / np.abs(samples).max()


def heard(words: np.ndarray, snr_db: float | None, rng) -> np.ndarray:
    wave = np.concatenate([np.zeros(VAD_RATE // 2, np.float32), words, np.zeros(VAD_RATE // 2, np.float32)])
    if snr_db is not None:
        wave = add_noise(wave[:, None], snr_db, rng)[:, 0]
    return np.clip(np.round(wave * 32767), -32768, 32767).astype(np.int16).astype(np.float32) / 32768


def first_decision(gate: OnsetGate, wave: np.ndarray) -> tuple[float | None, float | None]:
    """P(backchannel) of the first window the tracker cuts, and when (seconds after the speech began)."""
    tracker = OnsetTracker(VAD_RATE, gate.window_s)
    for k in range(0, len(wave), CHUNK):
        window = tracker.push(wave[k:k + CHUNK])
        if window is not None:
            return gate.p_backchannel(window), (k + CHUNK) / VAD_RATE - 0.5
    return None, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gate", default="models/onset_gate")
    parser.add_argument("--verbose", action="store_true", help="every clip's P(backchannel)")
    args = parser.parse_args()
    gate = OnsetGate.load(args.gate)
    rng = np.random.default_rng(0)
    print(f"gate {args.gate}: window {gate.window_s} s, interrupts below P(backchannel) {gate.threshold:.4f}")
    print("| condition | backchannels the agent talks on through: time gate alone | with the onset gate | barge-ins "
          "stopping the agent before their words: time gate alone | with the onset gate | when (p50 after onset): "
          "time gate alone | with the onset gate | barge-ins opening with a backchannel word, with the onset gate: "
          "stopping the agent at its verdict | at the time gate |")
    print("|---|---|---|---|---|---|---|---|---|")
    jobs = [(text, voice) for voice in VOICES for text in BACKCHANNELS + BARGE_INS + BACKCHANNEL_LED]
    clips = dict(zip(jobs, map_in_fresh_processes(clip, jobs, thread_count()), strict=True))
    for condition, snr_db in (("clean", None), ("20 dB SNR", 20.0)):
        passed = {"time": 0, "gate": 0}
        stopped = {"time": [], "gate": [], "led": []}
        for voice in VOICES:
            for text in BACKCHANNELS + BARGE_INS + BACKCHANNEL_LED:
                words = clips[text, voice]
                p, at = first_decision(gate, heard(words, snr_db, rng))
                by_gate = p is not None and p < gate.threshold
                by_time = len(words) / VAD_RATE > TIME_GATE_S  # still speaking at the time gate, no words yet
                if text in BACKCHANNELS:
                    passed["time"] += not by_time
                    passed["gate"] += not (by_gate or by_time)
                else:
                    kind = "gate" if text in BARGE_INS else "led"
                    if by_time and kind == "gate":
                        stopped["time"].append(TIME_GATE_S)
                    if by_gate or by_time:
                        stopped[kind].append(at if by_gate else TIME_GATE_S)
                if args.verbose:
                    shown = "no window" if p is None else f"P(backchannel) {p:.3f}"
                    print(f"  {condition} {voice.name} {voice.pitch} {text!r}: {len(words) / VAD_RATE:.2f} s, {shown}")
        n_bc, n_bi, n_led = (len(VOICES) * len(group) for group in (BACKCHANNELS, BARGE_INS, BACKCHANNEL_LED))

        def when(times):
            return f"{1000 * np.median(times):.0f} ms" if times else "-"

        print(f"| {condition} | {passed['time']} of {n_bc} | {passed['gate']} of {n_bc} | {len(stopped['time'])} of "
              f"{n_bi} | {len(stopped['gate'])} of {n_bi} | {when(stopped['time'])} | {when(stopped['gate'])} | "
              f"{sum(t < TIME_GATE_S for t in stopped['led'])} of {n_led} | "
              f"{sum(t == TIME_GATE_S for t in stopped['led'])} of {n_led} |")


if __name__ == "__main__":
    main()
