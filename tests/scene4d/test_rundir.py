import json

import pytest

from scene4d.rundir import RunDir, StageResult


def _writer(run_dir, name, calls):
    def fn():
        calls.append(name)
        run_dir.path(name).write_text("data")
        return StageResult(backend="test", reason="unit test", outputs=[name], metrics={"n": 1})
    return fn


def test_stage_is_recorded_then_resumed(tmp_path):
    run_dir, calls = RunDir(tmp_path), []
    record, ran = run_dir.run_stage("decode", {"stride": 1}, _writer(run_dir, "decode", calls))
    assert ran and calls == ["decode"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    stage = manifest["stages"]["decode"]
    assert stage["status"] == "done" and stage["backend"] == "test" and stage["backend_reason"] == "unit test"
    assert stage["wall_time_s"] >= 0 and stage["peak_rss_mb"] > 0 and stage["outputs"] == ["decode"]
    assert "torch" in manifest["versions"] and "python" in manifest["versions"]

    again = RunDir(tmp_path)  # a later run reads the manifest back
    _, ran = again.run_stage("decode", {"stride": 1}, _writer(again, "decode", calls))
    assert not ran and calls == ["decode"]


def test_changed_settings_missing_output_or_upstream_rerun(tmp_path):
    run_dir, calls = RunDir(tmp_path), []
    run_dir.run_stage("decode", {"stride": 1}, _writer(run_dir, "decode", calls))
    run_dir.run_stage("masks", {"k": 1}, _writer(run_dir, "masks", calls), depends_on=("decode",))
    run_dir.run_stage("masks", {"k": 2}, _writer(run_dir, "masks", calls), depends_on=("decode",))
    assert calls == ["decode", "masks", "masks"]
    run_dir.path("masks").unlink()
    run_dir.run_stage("masks", {"k": 2}, _writer(run_dir, "masks", calls), depends_on=("decode",))
    assert calls[-1] == "masks" and len(calls) == 4
    # Upstream reruns with new settings: the downstream stage no longer resumes.
    run_dir.run_stage("decode", {"stride": 2}, _writer(run_dir, "decode", calls))
    assert not run_dir.is_done("masks", {"k": 2}, depends_on=("decode",))


def test_failing_stage_is_marked_failed_and_not_resumed(tmp_path):
    run_dir = RunDir(tmp_path)

    def boom():
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        run_dir.run_stage("fit", {}, boom)
    run_dir.mark_failed("fit", "out of memory")
    stage = json.loads((tmp_path / "manifest.json").read_text())["stages"]["fit"]
    assert stage["status"] == "failed" and stage["error"] == "out of memory"
    assert not RunDir(tmp_path).is_done("fit", {})
