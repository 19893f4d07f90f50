# SPDX-License-Identifier: Apache-2.0
"""Prediction with an exported model directory (stage `export`) on onnxruntime. It needs numpy, onnxruntime,
tokenizers and soxr (soundfile for audio files); torch and transformers are never imported.

    from turnfusion.serving.onnx_backend import TurnSession
    session = TurnSession("models/fusion-onnx")              # int8 graphs; precision="fp32" for the others
    session.add("so i went to the market", wave, speaker=0, sample_rate=16000)
    -> {"keep": 0.81, "shift": 0.12, "backchannel": 0.07}   # after this utterance, given those before it

`OnnxTurnModel.predict` takes one utterance with its context, like `predict.TurnPredictor.predict`; inputs
are prepared by the same `processing.TurnFusionProcessor` (the export's preprocessor_config.json).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from turnfusion.errors import DataError, one_line
from turnfusion.json_files import json_object
from turnfusion.names import path_inside
from turnfusion.serving.predictor import Predictor, Remembered, check_model_config
from turnfusion.serving.processing import PROCESSOR_FILE, TurnFusionProcessor
from turnfusion.text.words import pad_right
from turnfusion.threads import usable_cores

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"  # an exported directory's index (written by turnfusion.serving.export)
CONFIG, TOKENIZER = "config.json", "tokenizer.json"  # the model's config and tokenizer (inputs: PROCESSOR_FILE)
# of the directory's layout: other formats are refused. 2: the config, not the manifest, describes the model;
# 3: the input policy is preprocessor_config.json (a format-2 export keeps it in config.json, still read)
FORMAT, READABLE_FORMATS = 3, (2, 3)
PRECISIONS = ("fp32", "int8")
# audio takes the waveform, or the frames of `audio_front_end` when the encoder's front end is local (`export`)
GRAPH_INPUTS = {"text": {"input_ids", "attention_mask"}, "audio": {"waveform", "frames"},
                "audio_front_end": {"waveform"}, "head": {"text_vector", "audio_vectors", "trp"}}


class OnnxTurnModel(Predictor):
    """The graphs of an exported directory on onnxruntime (`serving.predictor.Predictor`: prepare, predict,
    predict_csv)."""

    def __init__(self, directory: str | Path, precision: str = "int8", threads: int | None = None,
                 verify: bool = True):
        """`verify=False` skips the sha256 check of each file against the manifest (for someone who edits an
        export by hand); names that leave the folder and malformed files are refused either way."""
        import onnxruntime as ort

        directory = Path(directory)
        if precision not in PRECISIONS:
            raise DataError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
        manifest = read_manifest(directory)
        # a file the manifest does not list is refused, never read: a processor file (exports before it had none),
        # and anything in the graphs' folder (onnxruntime would read an external-data file a graph names)
        graph_folder = [p.relative_to(directory).as_posix() for p in sorted((directory / precision).glob("*"))]
        used = [CONFIG, *([PROCESSOR_FILE] if (directory / PROCESSOR_FILE).exists() else []),
                *([TOKENIZER] if "text" in manifest["graphs"] else []),
                *(f"{precision}/{name}.onnx" for name in manifest["graphs"]), *graph_folder]
        for name in used:
            if name not in manifest["files"]:
                raise DataError(f"{directory / name}: not listed in {MANIFEST}; export the model again")
        for name in manifest["files"] if verify else ():  # every listed file: a graph's external data too
            if file_sha256(directory / name) != manifest["files"][name].get("sha256"):
                raise DataError(f"{directory / name}: its sha256 does not match {MANIFEST} (changed or corrupted since "
                                "the export); export the model again, or load with verify=False if you edited it")
        config = json_object(directory / CONFIG)
        max_positions = check_model_config(config, str(directory / CONFIG))
        self.use_trp = config["use_trp"]
        mode = config["mode"]
        wanted = {"head", *(["text"] if mode != "audio" else []), *(["audio"] if mode != "text" else [])}
        if "audio" in wanted and "audio_front_end" in manifest["graphs"]:
            wanted.add("audio_front_end")
        if set(manifest["graphs"]) != wanted:
            raise DataError(f"{directory / MANIFEST}: graphs {sorted(manifest['graphs'])}, but a {mode} model has "
                            f"{sorted(wanted)}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, usable_cores())
        options.inter_op_num_threads = 1
        # three sessions run one after the other: threads that spin-wait after a run would take the cores the next
        # session needs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.graphs = {name: _session(directory / precision / f"{name}.onnx", name, options)
                       for name in manifest["graphs"]}
        check_graph_dims(manifest, self.graphs, config["audio_segments"], str(directory / MANIFEST))
        self.front_end = check_front_end(manifest, self.graphs, str(directory / MANIFEST))
        self.manifest, self.precision = manifest, precision
        self.processor = TurnFusionProcessor.from_pretrained(directory, config, max_positions)
        self.audio_memory = Remembered(self._encode_audio)

    # --- the three graphs ------------------------------------------------------------------------
    def text_vectors(self, contexts: list[str]) -> np.ndarray:
        """Pooled text vectors (n, dim) of context strings, left-truncated as in training."""
        return self.encode_ids(self.processor.token_ids(contexts))

    def encode_ids(self, ids: list[list[int]]) -> np.ndarray:
        """Pooled text vectors (n, dim) of token ids (each left-truncated to the model's max_length)."""
        padded, mask = pad_right([list(row)[-self.processor.config.max_length:] for row in ids])
        return self.graphs["text"].run(None, {"input_ids": padded, "attention_mask": mask})[0]

    def audio_vector(self, wave: np.ndarray | None) -> np.ndarray:
        """Pooled vector of one prepared segment (zeros for none, as pooling gives an empty segment); remembered,
        so a segment seen as the current utterance is not encoded again as context."""
        if wave is None:
            return np.zeros(self.manifest["graphs"]["audio"]["dim"], np.float32)
        return self.audio_memory(wave)

    def _encode_audio(self, wave: np.ndarray) -> np.ndarray:
        if self.front_end is not None:
            return self.vector_of_frames(self.front_end_frames(wave))
        return self.graphs["audio"].run(None, {"waveform": np.asarray(wave, np.float32)[None]})[0][0]

    def front_end_frames(self, wave: np.ndarray) -> np.ndarray:
        """(frames, dim) of a waveform through the local front end (`front_end` is not None)."""
        return self.graphs["audio_front_end"].run(None, {"waveform": np.asarray(wave, np.float32)[None]})[0][0]

    def vector_of_frames(self, frames: np.ndarray) -> np.ndarray:
        """The pooled audio vector of one segment's front-end frames (`front_end` is not None)."""
        return self.graphs["audio"].run(None, {"frames": np.asarray(frames, np.float32)[None]})[0][0]

    def predict_prepared(self, contexts: list[str], waves: list[list], trp: list[float] | None = None) -> np.ndarray:
        """Class probabilities (n, 3) for prepared inputs (`TurnFusionProcessor.prepare`)."""
        if self.use_trp and trp is None:
            raise DataError("this model takes the teacher's TRP as an input: pass trp")
        n = len(contexts)
        text = self.text_vectors(contexts) if "text" in self.graphs else None
        audio = np.stack([self.segments_vector(item) for item in waves]) if "audio" in self.graphs else None
        return self.head(text, audio, trp if trp is not None else [0.0] * n)

    def segments_vector(self, waves: list) -> np.ndarray:
        """The audio vectors of one example's segments (current first, None: no such segment), end to end."""
        return np.concatenate([self.audio_vector(w) for w in waves])

    def head(self, text: np.ndarray | None, audio: np.ndarray | None, trp) -> np.ndarray:
        """Class probabilities from pooled vectors (the modalities the model has)."""
        n = len(text if text is not None else audio)
        feed = {"text_vector": text if text is not None else np.zeros((n, 1), np.float32),
                "audio_vectors": audio if audio is not None else np.zeros((n, 1), np.float32),
                "trp": np.asarray(trp, np.float32)}
        graph = self.graphs["head"]
        return graph.run(None, {i.name: feed[i.name] for i in graph.get_inputs()})[0]


def read_manifest(directory: Path) -> dict:
    """The manifest of an exported directory, checked: its format, graphs named as the export names them, and every
    listed file inside the folder and present."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise DataError(f"{directory}: not an exported turnfusion model (no {MANIFEST}; run the export stage)")
    manifest = json_object(manifest_path)
    if manifest.get("format") not in READABLE_FORMATS:
        raise DataError(f"{manifest_path}: format {manifest.get('format')!r}, this turnfusion reads "
                        f"{list(READABLE_FORMATS)}; export the model again")
    files, graphs = manifest.get("files"), manifest.get("graphs")
    if not isinstance(files, dict) or not files:
        raise DataError(f"{manifest_path}: no `files` with their sha256; export the model again")
    if not isinstance(graphs, dict) or "head" not in graphs or not set(graphs) <= set(GRAPH_INPUTS):
        raise DataError(f"{manifest_path}: `graphs` must name the head and at most {sorted(GRAPH_INPUTS)}, got "
                        f"{sorted(graphs) if isinstance(graphs, dict) else graphs!r:.80}")
    for name, entry in files.items():
        path = path_inside(directory, name, f"{manifest_path}: file")
        if not isinstance(entry, dict):
            raise DataError(f"{manifest_path}: the entry of {name!r} is not an object with its sha256")
        if not path.is_file():
            raise DataError(f"{path}: missing (listed in {MANIFEST}); export the model again")
    return manifest


def check_graph_dims(manifest: dict, graphs: dict, audio_segments: int, source: str) -> None:
    """Each encoder graph's `dim` in the manifest: a whole number that the head's input takes (text: its
    text_vector's width, audio: audio_vectors' width / audio_segments); a DataError naming the manifest."""
    widths = {i.name: i.shape[-1] if i.shape else None for i in graphs["head"].get_inputs()}
    for name, head_input, per in (("text", "text_vector", 1), ("audio", "audio_vectors", audio_segments)):
        if name not in graphs:
            continue
        dim = manifest["graphs"][name].get("dim") if isinstance(manifest["graphs"][name], dict) else None
        if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 65_536:
            raise DataError(f"{source}: graphs.{name}.dim must be a whole number from 1 to 65536, got {dim!r:.40}")
        width = widths.get(head_input)
        if isinstance(width, int) and width != dim * per:
            raise DataError(f"{source}: graphs.{name}.dim is {dim}, but the head graph reads {width} values of "
                            f"{head_input}{f' ({per} segments)' if per > 1 else ''}; export the model again")


def check_front_end(manifest: dict, graphs: dict, source: str) -> dict | None:
    """{"hop", "field"} (samples) of an export whose audio front end is its own graph (None without one), checked:
    the audio graph reads its frames, and hop and field are whole numbers (field >= hop) that a live session can
    cut the audio by."""
    if "audio" not in graphs:
        return None
    reads = {i.name for i in graphs["audio"].get_inputs()}
    wanted = {"frames"} if "audio_front_end" in graphs else {"waveform"}
    if reads != wanted:
        has = "with" if "frames" in wanted else "without"
        raise DataError(f"{source}: the audio graph reads {sorted(reads)}, but {has} an audio_front_end graph it reads "
                        f"{sorted(wanted)}; export the model again")
    if "audio_front_end" not in graphs:
        return None
    spec = manifest["graphs"]["audio_front_end"]
    values = {k: spec.get(k) if isinstance(spec, dict) else None for k in ("hop", "field")}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65_536:
            raise DataError(f"{source}: graphs.audio_front_end.{key} must be a whole number of samples from 1 to "
                            f"65536, got {value!r:.40}")
    if values["field"] < values["hop"]:
        raise DataError(f"{source}: graphs.audio_front_end.field ({values['field']}) is shorter than its hop "
                        f"({values['hop']}); export the model again")
    problem = front_end_problem(graphs, values["hop"], values["field"])
    if problem:
        raise DataError(f"{source}: graphs.audio_front_end: {problem}; export the model again")
    return values


def front_end_problem(graphs: dict, hop: int, field: int) -> str | None:
    """Why the front end graph is not what its manifest says, or None: run on test signals, it must give one frame per
    `hop` samples from `field` on, frames as wide as the audio graph reads, and each frame from its own samples (two
    overlapping pieces give the whole's frames): a piecewise encoding of a graph that is not so would be silently
    wrong."""
    signal = np.random.default_rng(0).normal(0, 0.1, field + 2 * hop).astype(np.float32)

    def frames(wave):
        try:
            return graphs["audio_front_end"].run(None, {"waveform": wave[None]})[0][0]
        except Exception as exc:  # onnxruntime's own error types
            raise DataError(f"the audio_front_end graph fails on {len(wave)} samples ({one_line(exc, 100)})") from None

    whole, one = frames(signal), frames(signal[: field + hop - 1])
    if len(whole) != 3 or len(one) != 1:
        return (f"{len(signal)} and {field + hop - 1} samples give {len(whole)} and {len(one)} frames, not 3 and 1 "
                f"(hop {hop}, field {field})")
    width = graphs["audio"].get_inputs()[0].shape[-1]
    if isinstance(width, int) and whole.shape[-1] != width:
        return f"its frames have {whole.shape[-1]} values, the audio graph reads {width}"
    pieces = np.concatenate([frames(signal[: field + hop])[:1], frames(signal[hop:])])
    if np.abs(pieces - whole).max() > 1e-3 * max(1.0, float(np.abs(whole).max())):
        return "its frames depend on more than their own samples (not a local front end): it cannot run in pieces"
    return None


def pieces_for(model: OnnxTurnModel, piece_s: float) -> IncrementalAudio | None:
    """The front end in pieces for a live session (None: encode whole at the end of speech): for an export whose front
    end is local, a model that reads audio, no trimming that moves a segment's end, `piece_s` > 0, and a policy cut
    (`window_hop`) on the front end's grid or on a whole number of its hops (so the audio a session drops from an
    utterance's start, whole steps of both, stays short)."""
    config = model.processor.config
    if model.front_end is None or not model.processor.uses_audio or config.trim_vad_threshold is not None \
            or piece_s <= 0:
        return None
    hop = model.front_end["hop"]
    if config.window_hop != 1 and config.window_hop % hop and hop % config.window_hop:
        log.warning("window_hop %d is not on the audio front end's hop (%d): utterances are encoded whole",
                    config.window_hop, hop)
        return None
    return IncrementalAudio(model)


def remember_from_pieces(model: OnnxTurnModel, pieces: IncrementalAudio | None, audio: np.ndarray,
                         segment: np.ndarray) -> bool:
    """At the end of speech: the vector of `segment` (what the policy keeps of `audio`, the utterance from its first
    sample, at the model's rate) from `pieces` into the model's remembered encodings, so that the decision finds it;
    True when done, False (nothing done: it is to be encoded whole) without pieces or when the policy's cut is off
    their grid."""
    offset = len(audio) - len(segment)  # the policy keeps the end
    if pieces is None or offset % pieces.hop:
        return False
    model.audio_memory.remember(segment, pieces.vector(audio, offset))
    return True


class IncrementalAudio:
    """One utterance's audio through the model's local front end in pieces, as it arrives (`OnnxTurnModel.front_end`
    not None), so that at the end of speech only the frames not yet computed and the rest of the audio path run.

    Frame k reads the samples [k * hop, k * hop + field) counted from the utterance's first sample; a segment that
    starts a whole number of hops in (`offset`) has the frames from offset / hop on, which is what encoding it alone
    gives (`vector` equals `OnnxTurnModel.audio_vector` of the segment, within float rounding: tested)."""

    def __init__(self, model: OnnxTurnModel):
        if model.front_end is None:
            raise DataError("this export's audio front end is not its own graph (the encoder's front end is not "
                            "local): it is encoded whole at the end of speech")
        self.model, self.hop, self.field = model, model.front_end["hop"], model.front_end["field"]
        self.reset()

    def reset(self) -> None:
        self._frames: list[np.ndarray] = []  # pieces (n, dim), frames 0, 1, ... of the utterance
        self.count = 0

    def frames_in(self, samples: int) -> int:
        """Frames whose samples all lie in the first `samples`."""
        return 0 if samples < self.field else (samples - self.field) // self.hop + 1

    def extend(self, audio: np.ndarray) -> None:
        """Compute the frames that `audio` (the utterance's samples so far, from its first) completes."""
        total = self.frames_in(len(audio))
        if total > self.count:
            piece = audio[self.count * self.hop:]  # its frames are those from `count` to `total`
            self._frames.append(self.model.front_end_frames(piece))
            self.count = total

    def drop(self, samples: int) -> None:
        """The utterance's first `samples` (a whole number of hops) are no longer kept: frames count from there."""
        if samples % self.hop:
            raise ValueError(f"drop {samples} samples: not a whole number of hops ({self.hop})")
        gone = samples // self.hop
        kept = np.concatenate(self._frames)[gone:] if self._frames else np.zeros((0, 1), np.float32)
        self._frames, self.count = ([kept] if len(kept) else []), max(0, self.count - gone)

    def vector(self, audio: np.ndarray, offset: int = 0) -> np.ndarray:
        """The pooled audio vector of the segment `audio[offset:]` (`offset` a whole number of hops; `audio` from
        the utterance's first sample, as `extend` was given it)."""
        if offset % self.hop:
            raise ValueError(f"offset {offset}: not a whole number of hops ({self.hop})")
        self.extend(audio)
        frames = np.concatenate(self._frames)[offset // self.hop: self.frames_in(len(audio))]
        return self.model.vector_of_frames(frames)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in blocks (what an export's manifest lists for each file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _session(path: Path, name: str, options):
    """An onnxruntime session of the graph `name`, refused when the file is not a graph or takes other inputs."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own InvalidProtobuf / Fail / InvalidGraph types
        raise DataError(f"{path}: not a loadable ONNX graph ({one_line(exc)})") from None
    inputs = {i.name for i in session.get_inputs()}
    if not inputs or not inputs <= GRAPH_INPUTS[name]:  # the exporter drops inputs a graph does not use (trp)
        raise DataError(f"{path}: takes inputs {sorted(inputs)}, but the {name} graph takes "
                        f"{sorted(GRAPH_INPUTS[name])}; export the model again")
    return session


class TurnSession:
    """A live conversation: feed each finished utterance, get what happens next.

    The session remembers the previous utterances (as many as the model reads) and their audio encodings, so
    each call encodes only the new utterance's audio; the text context is encoded again, because it changes
    with every utterance (truncation, repeated words of overlapping windows). Each utterance is taken to have
    ended before the next began (the `history` rule); a `<ts>` goes where the speaker changes.
    """

    def __init__(self, model: Predictor | str | Path, precision: str = "int8", threads: int | None = None,
                 verify: bool = True):
        """`model`: an exported directory (loaded here on onnxruntime), or a loaded predictor of either backend
        (`OnnxTurnModel`, `predict.TurnPredictor`)."""
        self.model = model if isinstance(model, Predictor) else OnnxTurnModel(model, precision, threads, verify)
        self.history: list[dict] = []
        self.last_entry: dict | None = None  # the context item of the last utterance added (None: no context read)

    def add(self, text: str, audio=None, speaker: int = 0, sample_rate: int | None = None,
            trp: float | None = None) -> dict[str, float]:
        """Probabilities of keep / shift / backchannel after this utterance; then it joins the context."""
        context, waves = self.model.processor.prepare(text, audio, speaker, self.history, sample_rate)
        probs = self.model.probabilities(context, waves, trp)
        self.last_entry = self.append(text, speaker, waves[0] if self.model.processor.reads_context_audio else None)
        return probs

    def remember(self, text: str, speaker: int) -> None:
        """An utterance joins the context without a prediction (an agent's own words; its audio is not read)."""
        self.model.processor.words(text, "remembered utterance")
        if not isinstance(speaker, (int, np.integer)) or isinstance(speaker, bool) or speaker not in (0, 1):
            raise DataError(f"remembered utterance: speaker must be 0 or 1, got {speaker!r:.40}")
        self.append(text, speaker, None)

    def append(self, text: str, speaker: int, wave=None) -> dict | None:
        """An utterance joins the context as `add` leaves it (`wave`: its prepared segment, for a model that reads
        context audio); returns its context item (None for a model that reads no context)."""
        if not self.model.context_length:
            return None
        # kept prepared: at the model's rate, cut as the policy says
        current = {"text": text, "speaker": speaker, "audio": wave,
                   "sample_rate": self.model.processor.config.sample_rate}
        self.history = [*self.history, current][-self.model.context_length:]
        return current

    def reset(self) -> None:
        """A new conversation."""
        self.history, self.last_entry = [], None
