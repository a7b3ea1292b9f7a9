"""docs/config.md cannot drift from the schema: every key has its row, with the schema's default."""
import re
from pathlib import Path

from pydantic import BaseModel

from transduce.config import Config

DOC = Path(__file__).parents[1] / "docs" / "config.md"


def _leaves(model: type[BaseModel], prefix: str = ""):
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _leaves(ann, prefix + name + ".")
        else:
            yield prefix + name, field.get_default(call_default_factory=True)


def test_every_config_key_has_a_row_with_its_default():
    # key -> the default shown: the first `...` of the second column (more may follow it)
    rows = {key: re.match(r"`?([^`]*)", cell.strip()).group(1) for key, cell in
            re.findall(r"^\| `([\w.]+)` \|([^|]*)\|", DOC.read_text(), re.M)}
    keys = dict(_leaves(Config))
    missing = sorted(set(keys) - set(rows))
    assert not missing, f"docs/config.md has no row for {missing}"
    wrong = {k: (rows[k], keys[k]) for k in keys if rows[k].strip() != str(keys[k])}
    assert not wrong, f"docs/config.md shows other defaults than the schema: {wrong}"
    assert not set(rows) - set(keys), f"docs/config.md documents unknown keys {set(rows) - set(keys)}"
