"""transduce: sequence-to-sequence with attention RNNs, trained, decoded and scored end to end.

    import transduce
    model = transduce.train("config.yaml", overrides={"training.max_epochs": 5})
    model = transduce.load("runs/my-model")
    model.translate(["hola mundo"], beam_size=5)
    transduce.evaluate(hyps, refs, metrics=["bleu", "chrf"])
    summary = transduce.tune("config.yaml", trials=12, minutes=30)  # its tune: section
"""
import importlib

# ``import transduce`` loads neither torch nor pydantic (the command line starts with it, and
# ``--help`` or ``evaluate`` need neither); the functions import what they use when called.
from transduce.api import load, train, tune
from transduce.errors import TransduceError
from transduce.evaluate import evaluate

__version__ = "0.1.0"
__all__ = ["train", "load", "evaluate", "tune", "Config", "load_config", "Translator", "Trainer",
           "TransduceError"]

_LAZY = {"Config": "transduce.config", "load_config": "transduce.config",
         "Translator": "transduce.decode.translator", "Trainer": "transduce.training.trainer"}


def __getattr__(name: str):
    """The classes behind the API, imported on first use (they pull in torch and pydantic)."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'transduce' has no attribute {name!r}")
