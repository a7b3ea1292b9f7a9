"""Image sources (data.src_type: image): loading and its errors, the CNN encoder under the
attention decoder, training, decoding, exact resume. Tiny generated shapes images, seeded."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from transduce.cli import main
from transduce.config import load_config
from transduce.data.batching import image_batch
from transduce.data.generate import write_shapes
from transduce.data.images import Images, cells, load_image
from transduce.decode.search import beam_search, greedy
from transduce.decode.translator import Translator
from transduce.model.seq2seq import build_model
from transduce.training.trainer import Trainer

from conftest import signal_after_update


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return write_shapes(tmp_path_factory.mktemp("shapes"), {"train": 64, "dev": 8, "test": 8})


def image_config(data: Path, model_dir: Path, **training) -> dict:
    """A tiny captioning run; the config names nothing image-specific but data.src_type."""
    return {"seed": 1, "model_dir": str(model_dir),
            "data": {"train": str(data / "train"), "dev": str(data / "dev"),
                     "src_type": "image"},
            "model": {"embedding_size": 16, "encoder_hidden_size": 16, "decoder_hidden_size": 24,
                      "dropout": 0.2},
            "training": {"batch_size": 16, "max_steps": 12, "validate_every": 4, "log_every": 2,
                         "lr": 0.01, "attention_reg": 1.0, **training},
            "decoding": {"beam_size": 3, "batch_size": 8}}


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory) -> Path:
    cfg = image_config(shapes, tmp_path_factory.mktemp("run") / "model", max_steps=40,
                       validate_every=20, log_every=4)
    cfg["data"]["test"] = str(shapes / "test")
    Trainer(load_config(cfg)).train()
    return Path(cfg["model_dir"])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- loading -----------------------------------------------------------------------------
def test_transparency_is_composited_on_white_and_aspect_kept(tmp_path):
    img = Image.new("RGBA", (40, 20), (255, 0, 0, 0))  # transparent red, wide
    img.paste((0, 0, 255, 255), (17, 7, 23, 13))  # an opaque blue square in the middle
    img.save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png", 16)  # (3, 16, 16) uint8
    assert x.shape == (3, 16, 16) and x.dtype == np.uint8
    assert (x[:, :4] == 255).all()  # 40 x 20 -> 16 x 8, centred: white bands above and below
    assert (x[2] == 255).all()  # no red anywhere (the blue channel never drops): white
    assert x[0, 8, 8] < 100  # the blue square survived


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
def test_formats_load_to_the_same_picture(tmp_path, fmt):
    img = Image.new("RGB", (32, 32), "white")
    img.paste((200, 30, 30), (0, 0, 16, 32))
    img.save(tmp_path / f"a.{fmt.lower()}", fmt, quality=95)
    x = load_image(tmp_path / f"a.{fmt.lower()}", 32).astype(int)
    assert abs(x[0, 16, 4] - 200) < 12 and abs(x[1, 16, 28] - 255) < 12


def _bad_list(shapes: Path, tmp_path: Path, line3: str, n_tgt: int = 4) -> Path:
    lines = (shapes / "train.src").read_text().splitlines()[:4]
    lines[2] = line3
    (tmp_path / "train.src").write_text("".join(str(shapes / ln) + "\n" if ln.startswith(
        "images/") else ln + "\n" for ln in lines))
    tgt = (shapes / "train.tgt").read_text().splitlines()[:n_tgt]
    (tmp_path / "train.tgt").write_text("".join(t + "\n" for t in tgt))
    cfg = image_config(tmp_path / "x", tmp_path / "model")
    cfg["data"] = {"train": str(tmp_path / "train"), "src_type": "image"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("line3,n_tgt,expect", [
    ("images/missing.png", 4, "train.src:3: "),
    ("not-an-image.png", 4, "train.src:3: "),
    ("images/train-00002.png", 3, "train.tgt:4: line-count mismatch"),
])
def test_bad_image_data_is_one_line_naming_list_and_line(shapes, tmp_path, capsys, line3, n_tgt,
                                                         expect):
    (tmp_path / "not-an-image.png").write_text("hello\n")
    config = _bad_list(shapes, tmp_path, line3, n_tgt)
    assert main(["train", str(config)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and expect in err, err
    if "missing" in line3:
        assert "image not found" in err
    if "not-an-image" in line3:
        assert "not an image" in err


def test_pixels_are_cached_once_and_augmentation_keeps_range(shapes):
    paths = [str(shapes / p) for p in (shapes / "train.src").read_text().split()[:5]]
    images = Images.load(paths, 32)
    assert images.pixels.dtype == torch.uint8 and images.pixels.shape == (5, 3, 32, 32)
    torch.manual_seed(0)
    a = images.batch([0, 1], train=True)
    torch.manual_seed(0)
    assert torch.equal(a, images.batch([0, 1], train=True))  # the global RNG decides
    assert not torch.equal(a, images.batch([0, 1]))


# ---- the model ----------------------------------------------------------------------------
def test_config_needs_only_src_type_and_copy_auto_is_off(trained):
    cfg = yaml.safe_load((trained / "config.yaml").read_text())
    assert cfg["model"]["encoder"] == "cnn" and cfg["model"]["copy"] is False
    assert cfg["model"]["coverage"] is False and cfg["data"]["image_size"] == 32


def test_memory_has_one_cell_per_grid_position():
    cfg = load_config({"data": {"src_type": "image", "image_size": 48},
                       "model": {"encoder_hidden_size": 16, "decoder_hidden_size": 16}})
    model = build_model(cfg.model, 4, 10)
    memory, final = model.encoder(torch.rand(2, 3, 48, 48))
    assert memory.shape == (2, cells(48), 16) == (2, 36, 16)
    assert final[0].shape == (1, 2, 16)


def test_loss_falls_and_the_test_captions_get_cider(trained):
    events = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in events if r["event"] == "train"]
    assert losses[-1] < 0.8 * losses[0], losses
    test = [r for r in events if r["event"] == "test"]
    assert len(test) == 1 and {"bleu", "chrf", "cider", "signature"} <= set(test[0])


def test_beam_one_is_greedy_and_batch_size_does_not_matter(trained, shapes):
    t = Translator.load(trained, device="cpu")
    paths = [str(shapes / p) for p in (shapes / "dev.src").read_text().split()]
    pixels = Images.load(paths, 32).batch(range(len(paths)))
    b = image_batch(pixels)
    lens = [12] * len(paths)
    g = greedy(t.model, b.src, b.src_lens, lens)
    k1 = beam_search(t.model, b.src, b.src_lens, lens, beam_size=1)
    assert [h.tokens for h in g] == [n[0].tokens for n in k1]
    one = t.translate(paths, beam_size=3, batch_size=1)
    assert one == t.translate(paths, beam_size=3, batch_size=5)
    assert one == [t.translate([p], beam_size=3)[0] for p in paths]
    # the coverage penalty and forced decoding measure the grid of cells, not the pixels
    assert len(t.translate(paths, beam_size=3, coverage_penalty=0.2)) == len(paths)
    scores = t.score(paths, (shapes / "dev.tgt").read_text().splitlines())
    assert all(np.isfinite(lp) and lp < 0 for lp, _ in scores)


def test_caption_and_translate_print_one_line_per_image_in_order(trained, shapes, capsys):
    paths = [str(shapes / p) for p in (shapes / "dev.src").read_text().split()[:3]]
    assert main(["caption", str(trained), *paths, "--beam-size", "1"]) == 0
    captions = capsys.readouterr().out.splitlines()
    assert len(captions) == 3
    # translate reads a list file whose paths are relative to it, as training does
    assert main(["translate", str(trained), "-i", str(shapes / "dev.src"), "--beam-size",
                 "1"]) == 0
    assert capsys.readouterr().out.splitlines()[:3] == captions
    assert main(["caption", str(trained), str(shapes / "nope.png")]) == 1
    assert "nope.png: image not found" in capsys.readouterr().err
    # transduce test scores an image model's captions with CIDEr too
    assert main(["test", str(trained), "--src", str(shapes / "dev.src"), "--ref",
                 str(shapes / "dev.tgt"), "--json", "--beam-size", "1"]) == 0
    assert {"bleu", "chrf", "cider"} <= set(json.loads(capsys.readouterr().out))


def test_plot_draws_the_image_under_each_word(trained, shapes, tmp_path, capsys):
    path = shapes / (shapes / "dev.src").read_text().split()[0]
    assert main(["plot", str(trained), str(path), "-o", str(tmp_path / "att.png")]) == 0
    caption = capsys.readouterr().out.strip()
    with Image.open(tmp_path / "att.png") as im:  # a panel per word, </s> and the input
        assert im.format == "PNG" and im.width >= 2 * 200
    assert caption == Translator.load(trained, device="cpu").translate([str(path)])[0]


def test_server_captions_an_uploaded_image(trained, shapes):
    from fastapi.testclient import TestClient

    from transduce.serve.app import create_app

    t = Translator.load(trained, device="cpu")
    path = shapes / (shapes / "dev.src").read_text().split()[0]
    with TestClient(create_app(t), base_url="http://localhost") as c:
        assert c.get("/health").json()["model"]["src_type"] == "image"
        r = c.post("/caption?attention=true&beam_size=2", content=path.read_bytes(),
                   headers={"Content-Type": "image/png"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["caption"] == t.translate([str(path)], beam_size=2)[0]
        att = body["attention"]
        assert att["grid"] == [4, 4] and len(att["matrix"][0]) == 16
        assert len(att["matrix"]) == len(att["tgt_tokens"])
        bad = c.post("/caption", content=b"not an image", headers={"Content-Type": "image/png"})
        assert bad.status_code == 422 and bad.json()["error"] == "invalid_image"
        assert c.post("/caption", content=path.read_bytes(),
                      headers={"Content-Type": "text/plain"}).status_code == 415
        # text inputs of an image model would be paths on the server's disk
        refused = c.post("/translate", json={"text": ["/etc/passwd"]})
        assert refused.status_code == 404 and refused.json()["error"] == "image_model"


def test_resume_is_exact(shapes, tmp_path):
    """Dropout and augmentation draw from the RNG, so last/ must restore it exactly."""
    ref = Path(image_config(shapes, tmp_path / "ref")["model_dir"])
    Trainer(load_config(image_config(shapes, ref))).train()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(image_config(shapes, tmp_path / "model")))
    with signal_after_update(6):
        assert main(["train", str(config)]) == 143
    assert main(["train", str(config)]) == 0
    for name in ("last", "best"):
        assert _sha(tmp_path / "model" / name / "model.safetensors") == \
            _sha(ref / name / "model.safetensors"), name
