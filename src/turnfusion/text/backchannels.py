# SPDX-License-Identifier: Apache-2.0
"""Backchannel words: what listeners say to show they follow without taking the turn, in units of a word or a
phrase, matched whatever a recogniser's spelling. Shared by live use (`pipecat_turns`: a backchannel does not
interrupt the agent) and labelling (`turn_events`: a listener's short isolated words confirm a backchannel)."""

from __future__ import annotations

import re

from turnfusion.errors import DataError

# English (Switchboard's and MM-F2F's commonest backchannels):
# each entry is one unit, a word or a phrase; an utterance is a backchannel when it is made of these units only
BACKCHANNELS_EN = ("mm", "mhm", "mm-hmm", "hmm", "uh-huh", "uh huh", "yeah", "yep", "yes", "yea", "right", "okay",
                   "ok", "sure", "alright", "wow", "oh", "ah", "i see", "true", "exactly", "totally", "definitely",
                   "really", "nice", "cool", "great", "got it", "gotcha", "oh right", "i know")
# German (for `label.backchannel_words: de` and the German demo corpus)
BACKCHANNELS_DE = ("mhm", "hm", "ja", "jaja", "ja ja", "genau", "okay", "ok", "aha", "ach so", "achso", "stimmt",
                   "richtig", "klar", "echt", "super", "gut", "ah", "oh", "ach")
BACKCHANNELS = {"en": BACKCHANNELS_EN, "de": BACKCHANNELS_DE}


def spelling(word: str) -> str:
    """A word as recognisers spell backchannels many ways: lower case, no hyphens, each run of one letter as one letter
    ("Mm-hmm", "Mhmm", "mmhm" -> "mhm"; "Mmm" -> "m"; "Uh-huh" -> "uhuh")."""
    return re.sub(r"(.)\1+", r"\1", word.lower().replace("-", ""))


WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")  # letters, with inner hyphens ("mm-hmm")


def backchannel_units(phrases) -> frozenset[tuple[str, ...]]:
    """The units of a backchannel list (`BACKCHANNELS_EN`, or a list in the users' language), as spelled words."""
    if isinstance(phrases, str) or not all(isinstance(p, str) for p in phrases):
        raise DataError(f"backchannels must be a list of words or phrases, got {phrases!r:.80}")
    units = frozenset(tuple(spelling(w) for w in WORD.findall(p)) for p in phrases)
    if not units or () in units:
        raise DataError(f"backchannels must be a list of words or phrases, each with a word, got {phrases!r:.80}")
    return units


def is_backchannel(text: str, max_words: int = 3, units: frozenset | None = None) -> bool:
    """Whether words are only a listener's response: at most `max_words` words, made entirely of backchannel units
    (`units`, default English: "mm-hmm", "yeah", "oh right", "i see"), whatever the recogniser's spelling
    ("Mm-hm.", "Mhmm", "Mmm"); a question, any other word, or a unit's fragment ("i", "it") is a turn."""
    units = units if units is not None else ENGLISH_UNITS
    words = [spelling(w) for w in WORD.findall(text)]
    if not 0 < len(words) <= max_words:
        return False
    longest = max(len(u) for u in units)
    covered = [True] + [False] * len(words)  # covered[k]: words[:k] splits into units
    for end in range(1, len(words) + 1):
        covered[end] = any(covered[end - n] and tuple(words[end - n: end]) in units
                           for n in range(1, min(longest, end) + 1))
    return covered[-1]


ENGLISH_UNITS = backchannel_units(BACKCHANNELS_EN)
