from dataclasses import dataclass, field

import pytest

from scene4d.config_loading import load_config, to_dict
from scene4d.errors import InputError


@dataclass
class Inner:
    steps: int = 10
    lr: float = 0.01
    name: str = "a"


@dataclass
class Root:
    inner: Inner = field(default_factory=Inner)
    flag: bool = False


@pytest.fixture
def presets(tmp_path):
    (tmp_path / "fast.yaml").write_text("inner:\n  steps: 3\n")
    (tmp_path / "broken.yaml").write_text("inner: [unclosed\n")
    (tmp_path / "typo.yaml").write_text("inner:\n  stepz: 3\n")
    return tmp_path


def test_defaults_preset_then_overrides(presets):
    assert load_config(Root, presets) == Root()
    config = load_config(Root, presets, "fast", ["inner.lr=0.5", "flag=true"])
    assert isinstance(config, Root) and isinstance(config.inner, Inner)
    assert (config.inner.steps, config.inner.lr, config.flag) == (3, 0.5, True)
    assert to_dict(config) == {"inner": {"steps": 3, "lr": 0.5, "name": "a"}, "flag": True}


def test_preset_given_as_a_file_path(presets):
    assert load_config(Root, "unused", str(presets / "fast.yaml")).inner.steps == 3


@pytest.mark.parametrize("preset, overrides, message", [
    ("nope", [], r"unknown preset 'nope' \(available: broken, fast, typo\)"),
    ("typo", [], "preset 'typo': Key 'stepz' not in 'Inner'"),
    ("broken", [], "not valid YAML"),
    (None, ["inner.steps=ten"], "override 'inner.steps=ten': Value 'ten'"),
    (None, ["inner.missing=1"], "Key 'missing' not in 'Inner'"),
    (None, ["steps"], "is not of the form key=value"),
])
def test_bad_config_gives_one_line_input_error(presets, preset, overrides, message):
    with pytest.raises(InputError, match=message) as info:
        load_config(Root, presets, preset, overrides)
    assert "\n" not in str(info.value)
