"""transduce: sequence-to-sequence with attention RNNs, trained, decoded and scored end to end.

    import transduce
    model = transduce.train("config.yaml", overrides={"training.max_epochs": 5})
    model = transduce.load("runs/my-model")
    model.translate(["hola mundo"], beam_size=5)
    transduce.evaluate(hyps, refs, metrics=["bleu", "chrf"])
"""
from transduce.api import load, train
from transduce.config import Config, load_config
from transduce.decode.translator import Translator
from transduce.errors import TransduceError
from transduce.evaluate import evaluate

__version__ = "0.1.0"
__all__ = ["train", "load", "evaluate", "Config", "load_config", "Translator", "Trainer",
           "TransduceError"]


def __getattr__(name: str):
    if name == "Trainer":  # imported lazily: training pulls in more than decoding needs
        from transduce.train.trainer import Trainer

        return Trainer
    raise AttributeError(name)
