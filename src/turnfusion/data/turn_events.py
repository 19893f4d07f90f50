"""Turn-taking labels from who speaks when, without annotators (Voice Activity Projection's events).

The input is each speaker's activity as units: inter-pausal units (IPUs: speech with no pause of `min_pause_s`
inside) from a voice activity detector, or the pieces of a timed transcript merged the same way (then with their
words). Following Ekstedt & Skantze's events (VoiceActivityProjection, `vap/events.py`: shift / hold at mutual
silence, a backchannel as short, isolated activity of the listener), at the end of every utterance of speaker A:

- **shift** (1): the other speaker B goes on before A does, with an utterance (not a backchannel); when B had started
  while A was still speaking (by more than `min_overlap_s`) and A stopped, the shift came by a barge-in (it is in the
  overlap table);
- **backchannel** (2): A goes on next, and B made a backchannel between `bc_window_s` before A's end and A's
  going on;
- **keep** (0): A goes on next, and B said nothing in between.

A backchannel is a unit of the listener at most `bc_max_s` long, with no other activity of the listener
`bc_pre_silence_s` before and `bc_post_silence_s` after it, made while the other speaker holds the floor
(the other is active within `bc_window_s` of it), and, when the unit has words, made of backchannel words only.
It is not an utterance: it gets no label of its own. An utterance is not labelled, but counted with its reason,
when it cannot be labelled honestly: `too_short`, `inside_other_turn` (said while the other speaker held the floor
from before it began until after it ended), `both_went_on` (the other started before its end and both went on),
`no_response` (nobody spoke within `max_gap_s`) or `end_of_recording`.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from turnfusion.choices import BACKCHANNEL, KEEP, SHIFT
from turnfusion.text.backchannels import is_backchannel

if TYPE_CHECKING:
    from turnfusion.config import LabelConfig

SKIP_REASONS = ("too_short", "inside_other_turn", "both_went_on", "no_response", "end_of_recording")
OVERLAP_OUTCOMES = ("backchannel", "barge_in", "both_went_on")


@dataclass(frozen=True)
class Unit:
    """One stretch of a speaker's activity (an IPU or merged transcript pieces), with its words when known."""

    speaker: int
    start: float
    end: float
    text: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Events:
    """What `label_events` found in one recording."""

    utterances: list[tuple[Unit, int]] = field(default_factory=list)  # (utterance, label)
    skipped: list[tuple[Unit, str]] = field(default_factory=list)  # (utterance, reason)
    backchannels: list[Unit] = field(default_factory=list)
    overlaps: list[dict] = field(default_factory=list)  # listener, start, end, floor_holder, overlap_s, outcome


def merge_units(speaker: int, pieces: list[tuple[float, float, str]], min_pause_s: float,
                min_speech_s: float = 0.0) -> list[Unit]:
    """One speaker's pieces (start, end, words) merged into units wherever the pause between them is shorter than
    `min_pause_s`; units shorter than `min_speech_s` are dropped (a click, a breath)."""
    units: list[list] = []
    for start, end, text in sorted(pieces):
        if units and (start <= units[-1][1] or start - units[-1][1] < min_pause_s):  # touching pieces: one unit
            units[-1][1] = max(units[-1][1], end)
            units[-1][2] = f"{units[-1][2]} {text}".strip()
        else:
            units.append([start, end, text])
    return [Unit(speaker, s, e, t) for s, e, t in units if e - s >= min_speech_s]


class _Timeline:
    """One speaker's units in time order (a speaker's units never overlap: `merge_units` joined them), with
    lookups by time."""

    def __init__(self, units: list[Unit]):
        self.units = sorted(units, key=lambda u: (u.start, u.end))
        self.starts = [u.start for u in self.units]

    def first_starting_after(self, t: float, strictly: bool = True) -> Unit | None:
        i = (bisect.bisect_right if strictly else bisect.bisect_left)(self.starts, t)
        return self.units[i] if i < len(self.units) else None

    def active_between(self, start: float, end: float, ignore: Unit | None = None) -> bool:
        """Whether a unit (other than `ignore`) overlaps [start, end]."""
        i = bisect.bisect_right(self.starts, end) - 1
        while i >= 0 and self.units[i].end >= start:
            if self.units[i] is not ignore:
                return True
            i -= 1
        return False

    def covering(self, t: float) -> Unit | None:
        """The unit going on at `t` (started at or before it, not yet ended)."""
        i = bisect.bisect_right(self.starts, t) - 1
        return self.units[i] if i >= 0 and self.units[i].end > t else None

    def last_starting_before(self, t: float) -> Unit | None:
        i = bisect.bisect_left(self.starts, t)
        return self.units[i - 1] if i else None

    def next_ending_after(self, start: float, end: float) -> Unit | None:
        """The first unit that starts at or after `start` and ends after `end`."""
        i = bisect.bisect_left(self.starts, start)
        return next((u for u in itertools.islice(self.units, i, None) if u.end > end), None)


def is_backchannel_unit(unit: Unit, own: _Timeline, other: _Timeline, cfg: LabelConfig, units) -> bool:
    """Whether a unit is a listener's backchannel (see the module's docstring); `units`: the backchannel words,
    or None to judge by activity alone."""
    if unit.duration > cfg.bc_max_s:
        return False
    if own.active_between(unit.start - cfg.bc_pre_silence_s, unit.end + cfg.bc_post_silence_s, ignore=unit):
        return False
    if not other.active_between(unit.start - cfg.bc_window_s, unit.end + cfg.bc_window_s):
        return False
    return not (units is not None and unit.text and not is_backchannel(unit.text, max_words=3, units=units))


def label_events(units: list[Unit], duration_s: float, cfg: LabelConfig, words=None) -> Events:
    """Labels at the end of every utterance of a two-speaker recording `duration_s` long (see the module's docstring).
    `words`: backchannel units (`backchannels.backchannel_units`) that a unit with words must be made of to be a
    backchannel; None: activity alone decides."""
    events = Events()
    timelines = [_Timeline([u for u in units if u.speaker == s]) for s in (0, 1)]
    is_bc = {id(u): is_backchannel_unit(u, timelines[u.speaker], timelines[1 - u.speaker], cfg, words)
             for u in units}
    events.backchannels = sorted((u for u in units if is_bc[id(u)]), key=lambda u: u.start)
    talk = [_Timeline([u for u in t.units if not is_bc[id(u)]]) for t in timelines]
    for unit in sorted((u for t in talk for u in t.units), key=lambda u: (u.start, u.speaker)):
        outcome = _label(unit, talk[unit.speaker], talk[1 - unit.speaker], timelines[1 - unit.speaker], is_bc,
                         duration_s, cfg)
        if isinstance(outcome, str):
            events.skipped.append((unit, outcome))
        else:
            events.utterances.append((unit, outcome))
    events.overlaps = _overlaps(timelines, talk, is_bc, cfg)
    return events


def _label(unit: Unit, own: _Timeline, other: _Timeline, other_all: _Timeline, is_bc: dict, duration_s: float,
           cfg: LabelConfig) -> int | str:
    if unit.duration < cfg.min_utterance_s:
        return "too_short"
    held = other.covering(unit.start)
    if held is not None and held.end > unit.end:
        return "inside_other_turn"
    mine = own.first_starting_after(unit.start)
    theirs = other.next_ending_after(unit.start, unit.end)
    t_mine = mine.start if mine else math.inf
    t_theirs = theirs.start if theirs else math.inf
    if theirs is not None and t_theirs < unit.end:  # the other started before this ended
        outcome = overlap_outcome(unit, theirs, t_mine, cfg)
        if outcome is not None:
            return SHIFT if outcome == "barge_in" else outcome
    if t_mine == t_theirs < math.inf:  # both began again at once: neither answer is honest
        return "both_went_on"
    if min(t_mine, t_theirs) == math.inf:
        return "end_of_recording" if duration_s - unit.end < cfg.max_gap_s else "no_response"
    if min(t_mine, t_theirs) - unit.end > cfg.max_gap_s:
        return "no_response"
    if t_theirs < t_mine:
        return SHIFT
    reply = other_all.first_starting_after(unit.end - cfg.bc_window_s, strictly=False)
    while reply is not None and reply.start < t_mine:
        if is_bc[id(reply)]:
            return BACKCHANNEL
        reply = other_all.first_starting_after(reply.start)
    return KEEP


def overlap_outcome(floor: Unit, unit: Unit, floor_resumes: float, cfg: LabelConfig) -> str | None:
    """What followed the listener's `unit`, begun inside the holder's `floor`: None when they overlap less than
    `min_overlap_s` (the VAD's own blur: a quick shift, no overlap); `barge_in` when the holder stopped before the
    listener did and did not speak again until the listener ended (`floor_resumes`: the holder's next start, inf for
    none); else `both_went_on`. The one rule of the labels (the cut utterance is a shift) and the overlap table."""
    if min(floor.end, unit.end) - unit.start < cfg.min_overlap_s:
        return None
    return "barge_in" if floor.end < unit.end and floor_resumes >= unit.end else "both_went_on"


def _overlaps(timelines: list[_Timeline], talk: list[_Timeline], is_bc: dict, cfg: LabelConfig) -> list[dict]:
    """Every stretch where the listener spoke while the other held the floor: the listener's backchannels, and their
    utterances that began inside the other's utterance, with what followed."""
    rows = []
    for listener in (0, 1):
        holder = talk[1 - listener]
        for unit in timelines[listener].units:
            floor = holder.covering(unit.start)
            if is_bc[id(unit)]:
                outcome = "backchannel"
                floor = floor or holder.last_starting_before(unit.start)
            elif floor is None:
                continue
            else:  # an utterance begun while the other spoke: did the other stop, and this one go on?
                resumed = holder.first_starting_after(floor.start)
                outcome = overlap_outcome(floor, unit, resumed.start if resumed else math.inf, cfg)
                if outcome is None:  # within the VAD's own blur (Silero pads speech by 30 ms a side)
                    continue
            rows.append({"listener": listener, "start": unit.start, "end": unit.end,
                         "floor_holder_end": floor.end if floor else math.nan,
                         "overlap_s": max(0.0, min(floor.end, unit.end) - unit.start) if floor else 0.0,
                         "outcome": outcome, "text": unit.text})
    return sorted(rows, key=lambda r: r["start"])
