import json

import numpy as np
import pytest

from preprocess.learned.prompts import check_prompts, load_prompts, parse_prompts, to_sam_box, to_sam_points
from scene4d.errors import InputError


def test_load_prompts_reads_the_documented_schema(tmp_path):
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"objects": [
        {"id": 3, "name": "kid", "frame": 2, "points": [[10.5, 4.5], [12, 8]], "labels": [1, 0],
         "box": [1, 2, 30, 20]},
        {"id": 1, "box": [0, 0, 5, 5]},
        {"id": 2, "points": [[1.5, 1.5]]},
    ]}))
    kid, boxed, pointed = load_prompts(path)
    assert (kid.object_id, kid.name, kid.frame) == (3, "kid", 2)
    np.testing.assert_array_equal(kid.points, [[10.5, 4.5], [12, 8]])
    np.testing.assert_array_equal(kid.labels, [1, 0])
    np.testing.assert_array_equal(kid.box, [1, 2, 30, 20])
    assert (boxed.name, boxed.frame, boxed.points.shape, boxed.labels.shape) == ("object_1", 0, (0, 2), (0,))
    np.testing.assert_array_equal(pointed.labels, [1])
    assert pointed.box is None


@pytest.mark.parametrize("objects, message", [
    ([], "at least one object"),
    ([{"id": 0, "box": [0, 0, 1, 1]}], "id must be an integer >= 1"),
    ([{"id": 1, "box": [0, 0, 1, 1]}, {"id": 1, "box": [0, 0, 1, 1]}], "appears twice"),
    ([{"id": 1}], "give points, a box, or both"),
    ([{"id": 1, "points": [[1, 2]], "labels": [1, 1]}], "labels must be 1 values"),
    ([{"id": 1, "points": [[1, 2]], "labels": [2]}], "labels must be 1 values"),
    ([{"id": 1, "points": [[1, 2, 3]]}], "points must be a list"),
    ([{"id": 1, "box": [5, 0, 2, 4]}], "x0 < x1"),
    ([{"id": 1, "frame": -1, "box": [0, 0, 1, 1]}], "frame must be"),
])
def test_malformed_prompts_are_named(objects, message):
    with pytest.raises(InputError, match=message):
        parse_prompts({"objects": objects})


def test_unreadable_file_is_an_input_error(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read"):
        load_prompts(tmp_path / "bad.json")


def test_check_prompts_against_the_clip():
    prompts = parse_prompts({"objects": [{"id": 1, "frame": 1, "points": [[40, 24]], "box": [0, 0, 40, 24]}]})
    check_prompts(prompts, num_frames=2, width=40, height=24)  # edges of the frame are inside
    with pytest.raises(InputError, match="frame 1, the clip has 1 frames"):
        check_prompts(prompts, num_frames=1, width=40, height=24)
    with pytest.raises(InputError, match="outside the 39x24 frame"):
        check_prompts(prompts, num_frames=2, width=39, height=24)


def test_conversion_to_sam_pixel_indices():
    # The centre of pixel (row 4, column 10) is (10.5, 4.5) here and (10, 4) for SAM.
    np.testing.assert_array_equal(to_sam_points(np.array([[10.5, 4.5], [0.5, 0.5]])), [[10, 4], [0, 0]])
    # A box over columns 2..5 and rows 1..3 passes through the centres of pixels (2, 1) and (5, 3).
    np.testing.assert_array_equal(to_sam_box(np.array([2, 1, 6, 4])), [2, 1, 5, 3])
    np.testing.assert_array_equal(to_sam_box(np.array([2, 1, 2.5, 1.5])), [2, 1, 2, 1])
