"""ASR engines behind one streaming contract (`base.py`), and the choice between them.

Owns: `select_engine` (auto | vosk | pocketsphinx) and `is_vosk_model_dir`. Engine modules are
imported lazily: importing this package must stay cheap because PocketSphinx worker processes
(spawned) import it too, and Vosk loads a native library.
"""

from __future__ import annotations

from pathlib import Path

from voice.asr.base import EngineError, SpeechEngine, SpeechStream, Timeline

__all__ = [
    "EngineError",
    "SpeechEngine",
    "SpeechStream",
    "Timeline",
    "find_vosk_model",
    "is_vosk_model_dir",
    "select_engine",
]

ENGINE_NAMES = ("auto", "vosk", "pocketsphinx")


def is_vosk_model_dir(path: Path) -> bool:
    """True if `path` looks like a loadable Vosk model.

    Vosk's `Model` wants an acoustic model (`am/final.mdl`, or `final.mdl` at the top in old
    layouts), feature config (`conf/mfcc.conf`; `conf/model.conf` holds decoder options) and a
    decoding graph (`graph/HCLG.fst`, or `graph/HCLr.fst` + `graph/Gr.fst` for lookahead models).
    """
    p = Path(path)
    if not p.is_dir():
        return False
    am = (p / "am" / "final.mdl").is_file() or (p / "final.mdl").is_file()
    conf = (p / "conf" / "mfcc.conf").is_file() or (p / "mfcc.conf").is_file()
    graph = any(
        (p / g).is_file() for g in ("graph/HCLG.fst", "graph/HCLr.fst", "HCLG.fst", "HCLr.fst")
    )
    return am and conf and graph


def find_vosk_model(models_dir: Path) -> Path | None:
    """`models_dir` itself or its first (sorted) child that is a Vosk model; None if none is."""
    d = Path(models_dir)
    if is_vosk_model_dir(d):
        return d
    if not d.is_dir():
        return None
    for child in sorted(d.iterdir()):
        if is_vosk_model_dir(child):
            return child
    return None


def select_engine(name: str, vosk_model: Path | None, models_dir: Path, *, decoders: int = 4) -> SpeechEngine:
    """Build (not start) the engine that `CARECOACH_ASR_ENGINE=name` asks for.

    `decoders`: PocketSphinx's pool (`CARECOACH_ASR_DECODERS`), split over up to two worker processes
    (PocketSphinx holds the GIL, so two processes use both cores of a 2-core machine).

    auto: Vosk if `vosk_model` is given or a model is unpacked under `models_dir`, else PocketSphinx.
    Raises ValueError (one line, naming the bad value) for an unknown name or a missing model.
    """
    if name not in ENGINE_NAMES:
        raise ValueError(f"CARECOACH_ASR_ENGINE={name!r} is not one of {', '.join(ENGINE_NAMES)}")
    model: Path | None = None
    if vosk_model is not None:
        if not is_vosk_model_dir(vosk_model):
            raise ValueError(f"CARECOACH_VOSK_MODEL={str(vosk_model)!r} is not a Vosk model directory")
        model = Path(vosk_model)
    elif name != "pocketsphinx":
        model = find_vosk_model(models_dir)

    if name == "pocketsphinx" or (name == "auto" and model is None):
        from voice.asr.sphinx_engine import SphinxEngine

        workers = min(2, decoders)
        return SphinxEngine(workers=workers, decoders_per_worker=-(-decoders // workers))
    if model is None:
        raise ValueError(
            f"ASR engine 'vosk' needs a model: set CARECOACH_VOSK_MODEL or run "
            f"'carecoach models fetch' (nothing found under {models_dir})"
        )
    from voice.asr.vosk_engine import VoskEngine

    return VoskEngine(model)
