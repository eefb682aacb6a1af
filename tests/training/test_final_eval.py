"""final_eval: the query/gallery evaluation after the last epoch, on by default; the demo turns it off."""

from __future__ import annotations

from dataclasses import replace

from reid_export.checkpoint import load_checkpoint
from reid_export.training import train


def test_final_eval_on_by_default_and_skipped_when_off(tiny_config, tmp_path):
    assert tiny_config.final_eval
    on = train(replace(tiny_config, epochs=1, out=str(tmp_path / "on.pt")), quiet=True)
    off = train(replace(tiny_config, epochs=1, out=str(tmp_path / "off.pt"), final_eval=False), quiet=True)
    assert "rank1" in on.metrics and "mAP" in on.metrics
    assert "rank1" not in off.metrics and "mAP" not in off.metrics
    assert "rank1" not in load_checkpoint(off.checkpoint).metrics
