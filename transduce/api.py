"""The Python API: ``train``, ``load``, ``evaluate``, ``tune``."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # imported by the functions when called: ``import transduce`` stays light
    from transduce.config import Config
    from transduce.decode.translator import Translator
    from transduce.tuning.report import Summary


def train(config: str | Path | dict | Config, overrides: dict[str, Any] | list[str] | None = None,
          overwrite: bool = False) -> Translator:
    """Train from a YAML file, dict or :class:`Config`; returns the best model, ready to use."""
    from transduce.config import Config, load_config
    from transduce.training.trainer import Trainer

    config = load_config(config.to_dict() if isinstance(config, Config) else config, overrides)
    return Trainer(config, overwrite=overwrite).train()


def load(model_dir: str | Path | Sequence[str | Path], checkpoint: str = "best",
         device: str = "auto", quantize: str | None = None) -> Translator:
    """A trained model from ``model_dir`` (``best/`` by default), or from a list of model_dirs
    an ensemble (decode/ensemble.py); ``quantize="int8"`` for int8 decoding on the CPU. A
    CTranslate2 export (``transduce export --ctranslate2``) decodes with CTranslate2."""
    from transduce.decode.ctranslate2 import CTranslate2Translator, is_export
    from transduce.decode.ensemble import load_ensemble
    from transduce.decode.translator import Translator

    if isinstance(model_dir, (str, Path)):
        engine = CTranslate2Translator if is_export(model_dir) else Translator
        return engine.load(model_dir, checkpoint, device, quantize)
    return load_ensemble(list(model_dir), checkpoint, device, quantize)


def tune(config: str | Path | dict | Config, trials: int | None = None,
         minutes: float | None = None, jobs: int = 1, study_dir: str | Path | None = None,
         storage: str | None = None, overrides: dict[str, Any] | list[str] | None = None
         ) -> Summary:
    """Run (or continue) the hyper-parameter search of the config's ``tune:`` section: until
    ``trials`` trials have finished or ``minutes`` have passed, ``jobs`` at a time, in
    ``study_dir`` (default: model_dir). Returns the study's summary (trials, best, best.yaml)."""
    from transduce.config import Config, load_config
    from transduce.tuning.study import tune as run_study

    config = load_config(config.to_dict() if isinstance(config, Config) else config, overrides)
    return run_study(config, trials, minutes, jobs, study_dir, storage)
