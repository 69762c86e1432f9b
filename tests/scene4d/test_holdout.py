from scene4d.holdout import fitted_frames, hidden_frames


def test_every_fourth_frame_is_hidden_counting_from_the_fourth():
    assert hidden_frames(10, 4) == [3, 7]
    assert hidden_frames(12, 4) == [3, 7, 11]
    assert fitted_frames(10, 4) == [0, 1, 2, 4, 5, 6, 8, 9]


def test_no_holdout_hides_nothing():
    assert hidden_frames(5, 0) == [] and fitted_frames(5, 0) == [0, 1, 2, 3, 4]
    assert hidden_frames(3, 4) == [] and fitted_frames(3, 1) == []
