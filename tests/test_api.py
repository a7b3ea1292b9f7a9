"""The Python API's edges: a bare string, n-best through translate(), keyword typos, reprs."""
import sys

import pytest

import transduce
from transduce.errors import TransduceError

from conftest import tiny_config


@pytest.fixture(scope="module")
def model(reverse_data, tmp_path_factory):
    return transduce.train(tiny_config(reverse_data, tmp_path_factory.mktemp("api") / "model",
                                       training={"max_steps": 20, "validate_every": 20}))


def test_a_bare_string_is_refused_everywhere(model):
    for call in (lambda: model.translate("w1 w2"), lambda: model.search("w1 w2"),
                 lambda: model.score("w1 w2", ["w2 w1"]), lambda: model.score(["w1"], "w1")):
        with pytest.raises(TypeError, match=r"must be a list of strings, got one str; wrap it"):
            call()
    assert len(model.translate(["w1 w2"])) == 1


def test_n_best_comes_from_search_not_translate(model):
    with pytest.raises(TypeError, match="use search()"):
        model.translate(["w1 w2"], beam_size=3, n_best=3)
    nbest = model.search(["w1 w2"], beam_size=3, n_best=3)[0]
    assert len(nbest) == 3 and nbest[0].score >= nbest[1].score >= nbest[2].score
    assert model.translate(["w1 w2"], beam_size=3, n_best=1) == [nbest[0].text]


def test_a_misspelt_option_gets_a_suggestion(model):
    with pytest.raises(TransduceError, match="unknown decoding option 'beam_sise'; did you mean "
                                             "'beam_size'"):
        model.translate(["w1"], beam_sise=2)
    with pytest.raises(TransduceError, match="2 inputs but 1 targets"):
        model.score(["w1", "w2"], ["w1"])


def test_reprs_are_short_and_say_what_the_object_is(model):
    text = repr(model)
    assert text.startswith("Translator(") and "parameters" in text and "src->tgt" in text
    result = model.search(["w1 w2"], attention=True)[0][0]
    assert result.attention is not None and "tensor" not in repr(result)
    assert len(repr(result)) < 300


def test_version_names_transduce_torch_and_python(capsys):
    from importlib.metadata import version

    from transduce.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    python = sys.version.split()[0]
    assert capsys.readouterr().out.strip() == \
        f"transduce {transduce.__version__} (torch {version('torch')}, Python {python})"


def test_every_command_s_help_has_an_example_and_its_defaults(capsys):
    from transduce.cli import build_parser
    from transduce.cli.common import COMMANDS

    for name, *_ in COMMANDS:
        with pytest.raises(SystemExit):
            build_parser().parse_args([name, "--help"])
        text = capsys.readouterr().out
        assert f"example: transduce {name}" in text, name
    with pytest.raises(SystemExit):
        build_parser().parse_args(["translate", "m", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # the help's lines joined
    assert "(default: best)" in text
    # decoding flags name the config key they override and its default
    assert "(default: the model's decoding.beam_size, 5 unless its config sets it)" in text


def test_every_option_of_every_command_says_what_it_does():
    from transduce.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    bare = [f"{name} {action.option_strings or action.dest}"
            for name, sub in commands.items() for action in sub._actions
            if not action.help and action.dest != "help"]
    assert not bare, bare
