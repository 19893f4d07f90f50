"""The streaming session on scripted streams: eSpeak NG speech and silence in 20 ms chunks at a rate of its own."""

import os
import shutil

import numpy as np
import pytest
import soxr
from test_export import exported  # noqa: F401  (the fixture)

from turnfusion.data.sources import speech
from turnfusion.live.streaming import StreamConfig, StreamingTurnSession
from turnfusion.schema import DataError

RATE = 48000
CHUNK = RATE // 50  # 20 ms


def said(text: str) -> np.ndarray:
    clip = speech.speak(text)
    voiced = np.flatnonzero(np.abs(clip) > 1e-3)
    return soxr.resample(clip[voiced[0]: voiced[-1] + 1], speech.sample_rate(), RATE).astype(np.float32)


def silence(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1e-4, int(seconds * RATE)).astype(np.float32)


def chunks(wave: np.ndarray, size: int = CHUNK):
    pcm = np.clip(np.round(wave * 32767), -32768, 32767).astype(np.int16)
    for k in range(0, len(pcm), size):
        yield pcm[k: k + size]


def feed(session, wave, words=None, at=None, size=CHUNK):
    """Push `wave` chunk by chunk; `words` (text, final) go in after chunk `at`. Returns [(chunk index, decision)]."""
    decisions = []
    for k, chunk in enumerate(chunks(wave, size)):
        decision = session.push_audio(chunk)
        if decision:
            decisions.append((k, decision))
        if words and k == at:
            for text, final in words:
                session.push_words(text, final)
    return decisions


@pytest.fixture
def session(exported):  # noqa: F811
    return StreamingTurnSession(exported, RATE, precision="fp32")


def test_one_decision_per_end_of_speech_after_the_silence_and_not_before(session):
    first, second = said("so i went to the market"), said("did you like it")
    stream = np.concatenate([silence(0.5), first, silence(0.8), second, silence(0.8)])
    decisions = []
    for k, chunk in enumerate(chunks(stream)):
        if k == 10:  # before any speech: the words open the next utterance
            session.push_words("so i went", final=False)
        if k == int((0.5 + len(first) / RATE) / 0.02):
            session.push_words("so i went to the market", final=True)
        if k == int((1.3 + len(first) / RATE) / 0.02) + 5:
            session.push_words("did you like it", final=True)
        if k == int((1.3 + len(first) / RATE) / 0.02) + 10:
            assert session.user_speaking
        decision = session.push_audio(chunk)
        if decision:
            decisions.append(decision)
    assert [d.text for d in decisions] == ["so i went to the market", "did you like it"]
    ends = [0.5 + len(first) / RATE, 1.3 + (len(first) + len(second)) / RATE]
    for decision, end in zip(decisions, ends, strict=True):
        assert abs(decision.speech_end_s - end) < 0.15  # where the speech ended, give or take the VAD's frames
        assert 0.2 <= decision.decided_s - decision.speech_end_s <= 0.2 + 0.032 + 1e-6  # min_silence_s, + a frame
        assert sum(decision.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert not session.user_speaking
    assert [h["text"] for h in session.history] == ["so i went to the market", "did you like it"][
        -session.model.context_length:]


def test_a_short_pause_continues_the_utterance(session):
    words = said("well i think")
    stream = np.concatenate([silence(0.3), words, silence(0.1), words, silence(0.6)])
    decisions = feed(session, stream, [("well i think well i think", True)], at=20)
    assert len(decisions) == 1
    assert decisions[0][1].speech_end_s - decisions[0][1].speech_start_s > 2 * len(words) / RATE - 0.1


def test_the_audio_is_encoded_when_the_speech_ends_not_after_the_silence(session):
    calls = []
    encode = session.model._encode_audio
    session.model.audio_memory.function = lambda wave: calls.append(len(wave)) or encode(wave)
    stream = np.concatenate([silence(0.3), said("i went to the market yesterday"), silence(0.6)])
    session.push_words("i went to the market yesterday", final=True)
    counted = []
    for chunk in chunks(stream):
        decision = session.push_audio(chunk)
        counted.append(len(calls))
        if decision:
            break
    assert decision is not None
    # encoded at each end of speech (a pause between words too), never in the chunk that gave the decision
    assert calls and counted[-1] == counted[-2]
    speech_s = decision.speech_end_s - decision.speech_start_s
    assert 0 <= calls[-1] / 16000 - speech_s < 0.25  # the last encoding is the whole utterance (and its pre-roll)


@pytest.mark.parametrize("seconds", [0.01, 0.1, 0.25])
def test_the_audio_read_starts_a_pre_roll_before_the_speech_whatever_the_chunk_size(session, seconds):
    calls = []
    encode = session.model._encode_audio
    session.model.audio_memory.function = lambda wave: calls.append(len(wave)) or encode(wave)
    session.push_words("so we went there", final=True)
    stream = np.concatenate([silence(0.6), said("so we went there"), silence(0.6)])
    (_, decision), = feed(session, stream, size=int(seconds * RATE))
    read_s = calls[-1] / 16000 - (decision.speech_end_s - decision.speech_start_s)
    assert abs(read_s - session.config.pre_roll_s) < 0.01


def test_the_decision_waits_for_words_and_gives_up_after_max_word_wait(exported):  # noqa: F811
    session = StreamingTurnSession(exported, RATE, StreamConfig(max_word_wait_s=0.5), precision="fp32")
    utterance = np.concatenate([silence(0.3), said("so we went there"), silence(0.4)])
    assert feed(session, utterance) == []
    decision = session.push_words("so we went there", final=True)
    assert decision is not None and decision.text == "so we went there"
    assert feed(session, np.concatenate([utterance, silence(0.6)])) == []  # no words this time
    assert session.skipped_without_words == 1
    assert session.push_words("too late", final=True) is None and session.history[-1]["text"] == "so we went there"
    # the dropped utterance's words, late: dropped and counted, never the next utterance's
    assert session._early.text() == "" and session.late.dropped == 1


@pytest.fixture
def on_interim(exported):  # noqa: F811
    """A session that decides on interim words at once (no wait for the final): late finals then revise."""
    return StreamingTurnSession(exported, RATE, StreamConfig(max_final_wait_s=0), precision="fp32")


def test_a_late_final_with_times_replaces_the_interim_words_of_the_utterance_it_belongs_to(on_interim):
    session = on_interim
    clip = said("so we went to the market")
    end = 0.3 + len(clip) / RATE
    decisions = feed(session, np.concatenate([silence(0.3), clip, silence(0.5)]), [("so we went to", False)], at=30)
    assert decisions[0][1].text == "so we went to"
    # the next utterance ends without words before that final comes: the final (with times) finds its own utterance
    assert feed(session, np.concatenate([said("and then we ate"), silence(0.4)])) == []
    session.push_words("so we went to the market", final=True, start=0.3, end=end)
    assert session.history[-1]["text"] == "so we went to the market"
    decision = session.push_words("and then we ate", final=True, start=end + 0.5)
    assert decision.text == "and then we ate"
    assert [h["text"] for h in session.history][-2:] == ["so we went to the market", "and then we ate"]


def test_a_late_final_without_times_belongs_to_the_utterance_just_decided(on_interim):
    session = on_interim
    clip = said("so we went to the market")
    decisions = feed(session, np.concatenate([silence(0.3), clip, silence(0.5)]), [("so we went", False)], at=30)
    assert decisions[0][1].text == "so we went"
    session.push_words("so we went to the market", final=True)  # no times, no speech since the decision
    assert session.history[-1]["text"] == "so we went to the market"
    session.push_words("later words", final=False)  # a late interim changes nothing
    (_, decision), = feed(session, np.concatenate([said("and then"), silence(0.5)]), [("and then", True)], at=5)
    assert decision.text == "and then"


def test_bad_input_is_a_one_line_error_and_leaves_the_session_usable(session):
    session.push_audio(np.zeros(CHUNK, np.int16))
    bad = [
        (lambda: session.push_audio(np.zeros(CHUNK, np.int16), sample_rate=16000), "audio chunk 2: sample rate 16000"),
        (lambda: session.push_audio(np.full(CHUNK, np.nan, np.float32)), "audio chunk 3: audio has non-finite"),
        (lambda: session.push_audio(np.zeros((CHUNK, 2), np.float32)), "audio chunk 4: a live stream is mono"),
        (lambda: session.push_audio(np.zeros(RATE // 2, np.float32)), "audio chunk 5: 0.50 s in one chunk"),
        (lambda: session.push_audio(np.full(CHUNK, 300.0, np.float32)), "audio chunk 6: audio reaches 300"),
        (lambda: session.push_words("hi", True, start=0.4, end=0.2), "words 'hi': end 0.2 is before start 0.4"),
        (lambda: session.push_words("hi", True, start=9.0), "words 'hi': start 9.0 s is after the audio received"),
        (lambda: session.push_words("hi", True, start=float("nan")), "words 'hi': start must be seconds >= 0"),
        (lambda: session.push_words(b"hi", True), "words must be a string, got bytes"),
        (lambda: StreamingTurnSession(session.model, 0), "sample_rate must be a whole number"),
        (lambda: StreamConfig(min_silence_s=-1), "StreamConfig.min_silence_s must be a number from 0.0 to 10.0"),
        (lambda: session.push_audio(np.int16(5)), "audio chunk 7: audio must be 1-D, or 2-D with channels last"),
        (lambda: session.push_audio(np.zeros((1, 320), np.float32)), "audio chunk 8: a live stream is mono"),
    ]
    for call, message in bad:
        with pytest.raises(DataError, match=message.replace("(", r"\(")) as caught:
            call()
        assert "\n" not in str(caught.value)
    samples = session.samples
    assert session.push_audio(np.zeros(0, np.int16)) is None and session.samples == samples  # empty: nothing
    session.push_words("so i went to the market", True)
    stream = np.concatenate([said("so i went to the market"), silence(0.5)])
    assert len(feed(session, stream)) == 1  # still works


def rss_mb() -> float:
    """The process's resident memory now (Linux), not its peak."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_memory_stays_bounded_over_an_hour(session):
    talk = np.concatenate([said("so i went to the market and then we saw the museum and it was nice"),
                           silence(0.5)])
    pcm = list(chunks(talk))
    sizes, rss, streamed, decisions = [], [], 0.0, 0
    while streamed < 3600:  # an hour of talk and pauses, in 20 ms chunks
        session.push_words("so i went to the market and then we saw the museum", final=True)
        decisions += sum(session.push_audio(chunk) is not None for chunk in pcm)
        session.bot_said("tell me more")
        streamed += len(talk) / RATE
        if streamed // 600 > len(sizes):  # every 10 minutes
            sizes.append((len(session.history), len(session.model.audio_memory), len(session._early.finals)))
            rss.append(rss_mb())
    assert decisions >= 3600 / (len(talk) / RATE) - 1 and session.skipped_without_words == 0
    for history, memory, early in sizes:
        assert history <= max(1, session.model.context_length) and memory <= 64 and early == 0
    assert rss[-1] - rss[0] < 30, rss  # from the 10th to the 60th minute
    monologue = np.concatenate([talk[: -RATE // 2]] * 8)  # 30 s without a pause long enough to end it
    kept = []
    for chunk in chunks(monologue):
        session.push_audio(chunk)
        if session._utterance is not None:
            kept.append(sum(len(a) for a in session._utterance.audio))
    assert max(kept) <= 2 * session.keep + 16000  # the end of the utterance, not all of it
    for _ in range(100):  # words the VAD never hears speech for
        session.push_words("hello there", final=True)
    assert len(session._early.finals) <= 16


def test_a_decision_is_what_a_turn_session_gives_for_the_same_audio_and_words(exported):  # noqa: F811
    """The streaming session adds VAD, the audio clock and the late-words rule; the prediction itself must be the
    TurnSession's on the utterance's own audio (speech start - pre-roll to speech end) and words."""
    from turnfusion.serving.onnx_backend import TurnSession

    session = StreamingTurnSession(exported, RATE, precision="fp32")
    first, second = said("so i went to the market"), said("did you like it")
    stream = np.concatenate([silence(0.5), first, silence(0.8), second, silence(0.8)])
    decisions = []
    for k, chunk in enumerate(chunks(stream)):
        if k == 30:
            session.push_words("so i went to the market", final=True)
        if k == int((0.5 + len(first) / RATE + 0.9) / 0.02):  # once the second utterance began
            session.push_words("did you like it", final=True)
        decision = session.push_audio(chunk)
        if decision:
            decisions.append(decision)
    assert [d.text for d in decisions] == ["so i went to the market", "did you like it"]
    at_model_rate = soxr.resample(np.round(stream * 32767) / 32768, RATE, 16000).astype(np.float32)
    reference = TurnSession(exported, precision="fp32")
    for decision in decisions:
        start = int(round((decision.speech_start_s - session.config.pre_roll_s) * 16000))
        audio = at_model_rate[start: int(round(decision.speech_end_s * 16000))]
        want = reference.add(decision.text, audio, 0, 16000)
        assert decision.probabilities == pytest.approx(want, abs=2e-3)


def test_a_late_final_gives_the_decision_again_as_if_it_had_come_in_time(exported):  # noqa: F811
    """The recogniser's final came after the decision on interim words: the session decides again on the final
    words, with the same audio and context, as a session whose final came in time decides once."""
    stream = np.concatenate([silence(0.3), said("what time does the museum open tomorrow"), silence(0.5)])
    before = np.concatenate([silence(0.3), said("so i went to the market"), silence(0.5)])
    on_time = StreamingTurnSession(exported, RATE, precision="fp32")
    feed(on_time, before, [("so i went to the market", True)], at=30)  # a context (its audio too) the revision reads
    (_, want), = feed(on_time, stream, [("what time does the museum open tomorrow", True)], at=30)
    late = StreamingTurnSession(exported, RATE, StreamConfig(max_final_wait_s=0), precision="fp32")
    feed(late, before, [("so i went to the market", True)], at=30)
    (_, first), = feed(late, stream, [("what time does the museum open", False)], at=30)
    revised = late.push_words("what time does the museum open tomorrow", final=True)
    assert not first.revised and revised.revised and revised.text == want.text
    assert revised.probabilities == pytest.approx(want.probabilities, abs=1e-6) != first.probabilities
    assert late.history[-1]["text"] == want.text
    assert late.push_words("what time does the museum open tomorrow", final=True) is None  # the same final again

    after_the_agent = StreamingTurnSession(exported, RATE, StreamConfig(max_final_wait_s=0), precision="fp32")
    feed(after_the_agent, stream, [("what time does the museum open", False)], at=30)
    after_the_agent.bot_said("at nine")  # the agent answered already: nothing to revise, the context is corrected
    assert after_the_agent.push_words("what time does the museum open tomorrow", final=True) is None
    assert after_the_agent.history[-2]["text"] == want.text


def test_a_model_trained_without_words_decides_at_the_end_of_speech_with_no_transcript(tmp_path):
    import pipeline

    from turnfusion.serving.export import export

    built = pipeline.build(tmp_path / "p", words=False)
    export(built.model_dir, tmp_path / "onnx")
    session = StreamingTurnSession(tmp_path / "onnx", RATE, StreamConfig(max_word_wait_s=0.5), precision="fp32")
    utterance = np.concatenate([silence(0.3), said("so we went there"), silence(1.0)])
    decisions = feed(session, utterance)  # a model that reads words waits for them, then drops the utterance
    assert len(decisions) == 1 and decisions[0][1].text == "" and session.skipped_without_words == 0


def test_the_decision_waits_for_the_final_so_no_turn_is_handed_on_with_words_missing(exported):  # noqa: F811
    question = np.concatenate([silence(0.3), said("what time does the museum open tomorrow")])
    on_time = StreamingTurnSession(exported, RATE, precision="fp32")
    (_, want), = feed(on_time, np.concatenate([question, silence(0.5)]),
                      [("what time does the museum open tomorrow", True)], at=30)
    session = StreamingTurnSession(exported, RATE, StreamConfig(max_final_wait_s=1.0), precision="fp32")
    assert feed(session, np.concatenate([question, silence(0.5)]), [("what time does the museum open", False)],
                at=30) == []  # the final is due
    decision = session.push_words("what time does the museum open tomorrow", final=True)
    assert decision.text == want.text and not decision.revised
    assert decision.probabilities == pytest.approx(want.probabilities, abs=1e-6)
    # no final within max_final_wait_s of the end of speech: the interim words decide
    (_, timed_out), = feed(session, np.concatenate([question, silence(1.3)]), [("so i went", False)], at=30)
    assert timed_out.text == "so i went" and timed_out.decided_s - timed_out.speech_end_s >= 1.0
    # an interim piece without a word ("...") after the final is nothing to wait for
    (_, at_once), = feed(session, np.concatenate([question, silence(0.5)]),
                         [("what time does the museum open tomorrow", True), ("...", False)], at=30)
    assert at_once.decided_s - at_once.speech_end_s < 0.5
    # the user goes on before the final: no decision, the utterance joins the context on the words it has
    assert feed(session, np.concatenate([question, silence(0.5), said("and then")]), [("we went", False)],
                at=30) == []
    assert session.history[-1]["text"] == "we went"


def test_a_lagging_final_that_completes_the_interim_words_stays_with_its_utterance(on_interim):
    """A final without times that completes a decided utterance's interim words while the user has begun again is
    that utterance's, never the new one's ("saturday" was spoken before the pause: the recogniser lagged)."""
    session = on_interim
    clip = said("we could go to the beach on saturday")
    decisions = feed(session, np.concatenate([silence(0.3), clip, silence(0.4)]),
                     [("we could go to the beach on", False)], at=40)
    assert decisions[0][1].text == "we could go to the beach on"
    feed(session, said("and")[: RATE // 10])  # 0.1 s of the next utterance
    session.push_words("we could go to the beach on saturday", final=True)
    assert session.history[-1]["text"] == "we could go to the beach on saturday"
    assert session._utterance.words.text() == ""


@pytest.fixture(scope="module")
def local_export(local_front_end_dir, tmp_path_factory):
    """Exports of the model with a local audio front end: as trained (3 s kept), with 1 s kept, and with 1 s kept cut
    on the front end's hops (`window_hop`)."""
    from conftest import save_toy_processor

    from turnfusion.serving.export import export

    out = tmp_path_factory.mktemp("onnx")
    export(local_front_end_dir, out / "3s")
    short = tmp_path_factory.mktemp("model")
    shutil.copytree(local_front_end_dir, short, dirs_exist_ok=True)
    save_toy_processor(short, max_length=24, max_seconds=1.0)
    export(short, out / "1s")
    save_toy_processor(short, max_length=24, max_seconds=1.0, window_hop=320)
    export(short, out / "1s-hops")
    return out


def two_utterances(session, first_words: str, first: np.ndarray, second: np.ndarray):
    """Feed two user utterances (`first_words`, "did you like it") with their final words; the decisions and the
    sizes (samples) of the front end's runs."""
    stream = np.concatenate([silence(0.5), first, silence(0.8), second, silence(0.8)])
    runs, front_end = [], session.model.front_end_frames

    def counted(wave):
        runs.append(len(wave))
        return front_end(wave)

    session.model.front_end_frames = counted
    decisions = []
    for k, chunk in enumerate(chunks(stream)):
        if k == 30:
            session.push_words(first_words, final=True)
        if k == int((0.5 + len(first) / RATE + 0.9) / 0.02):
            session.push_words("did you like it", final=True)
        decision = session.push_audio(chunk)
        if decision:
            decisions.append(decision)
    return decisions, runs


@pytest.mark.parametrize("kept,words,precision", [
    ("3s", "so i went to the market yesterday", "fp32"), ("3s", "so i went to the market yesterday", "int8"),
    ("1s", "so i went to the market yesterday and then we walked home", "fp32"),
    ("1s-hops", "so i went to the market yesterday and then we walked home", "fp32")])
def test_the_front_end_runs_while_the_user_speaks_and_the_decision_is_the_whole_segments(local_export, kept, words,
                                                                                         precision):
    """With a local front end the user's audio is encoded in pieces while they speak; the decisions are those of the
    same session encoding each segment whole at the end of speech. With 1 s kept, the utterance outgrows what the
    session keeps (its first samples are dropped, whole hops at a time) and its segment starts off the hop grid, so
    the end of speech encodes it whole."""
    in_pieces = StreamingTurnSession(local_export / kept, RATE, precision=precision)
    whole = StreamingTurnSession(local_export / kept, RATE, StreamConfig(front_end_piece_s=0), precision=precision)
    speech = said(words), said("did you like it")  # eSpeak NG's output varies a little between calls: once
    got, runs = two_utterances(in_pieces, words, *speech)
    from turnfusion.serving.onnx_backend import TurnSession  # and the policy's cut is where training makes it:

    stream = np.concatenate([silence(0.5), speech[0], silence(0.8), speech[1], silence(0.8)])
    at_model_rate = soxr.resample(np.round(stream * 32767) / 32768, RATE, 16000).astype(np.float32)
    reference = TurnSession(local_export / kept, precision=precision)
    for decision in got:
        start = int(round((decision.speech_start_s - in_pieces.config.pre_roll_s) * 16000))
        want = reference.add(decision.text, at_model_rate[start: int(round(decision.speech_end_s * 16000))], 0, 16000)
        assert decision.probabilities == pytest.approx(want, abs=2e-3)
    want, whole_runs = two_utterances(whole, words, *speech)
    assert [d.text for d in got] == [d.text for d in want] == [words, "did you like it"]
    for g, w in zip(got, want, strict=True):
        assert g.probabilities == pytest.approx(w.probabilities, abs=1e-6)
    ends = whole.encoded_whole  # ends of speech (a pause within an utterance is one too)
    assert ends >= 2 and whole.encoded_in_pieces == 0 and len(whole_runs) == ends
    assert in_pieces.encoded_in_pieces + in_pieces.encoded_whole == ends
    if kept == "1s":
        assert in_pieces.encoded_whole >= 1
    else:
        assert in_pieces.encoded_whole == 0
        assert len(runs) > 10 and max(runs) < 0.25 * 16000  # pieces of ~0.2 s, never the whole utterance
    if kept != "3s":
        assert len(speech[0]) / RATE > 2 * in_pieces.keep / 16000  # long enough to be cut while spoken
