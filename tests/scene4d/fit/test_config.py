"""Fit settings: the deformation's kind and the hexplane settings are checked when the config is loaded."""

import pytest

from scene4d.config_loading import load_config
from scene4d.errors import InputError
from scene4d.fit.config import FitConfig


def test_hexplane_settings_load_from_yaml(tmp_path):
    (tmp_path / "hex.yaml").write_text("deformation: hexplane\nhexplane_resolutions: [8, 24]\n")
    config = load_config(FitConfig, tmp_path, "hex", ["lr_hexplane=0.02", "weights.plane_tv=0.5"])
    assert (config.deformation, config.hexplane_resolutions, config.lr_hexplane) == ("hexplane", [8, 24], 0.02)
    assert config.weights.plane_tv == 0.5
    assert FitConfig().deformation == "control_points"


@pytest.mark.parametrize("yaml, message", [
    ("deformation: hexplanes\n", "fit.deformation must be one of control_points, hexplane, got 'hexplanes'"),
    ("deformation: hexplane\nhexplane_resolutions: []\n", "fit.hexplane_resolutions must be a non-empty list"),
    ("deformation: hexplane\nhexplane_channels: 0\n", "fit.hexplane_channels must be positive, got 0"),
    ("deformation: hexplane\nhexplane_resolutions: [8, sixteen]\n", "Value 'sixteen'"),
])
def test_bad_values_give_one_line_errors(tmp_path, yaml, message):
    (tmp_path / "bad.yaml").write_text(yaml)
    with pytest.raises(InputError, match=message) as error:
        load_config(FitConfig, tmp_path, "bad")
    assert "\n" not in str(error.value)
