"""Progress off a terminal (a log file, CI, a pipe): plain lines with the rate and the time left (issue 21)."""

from __future__ import annotations

import re
from dataclasses import replace

from reid_export.progress import progress_bar
from reid_export.training import train


def test_off_a_terminal_progress_is_plain_lines_with_rate_and_eta(capsys):
    with progress_bar("decoding 4 images", 4, stats="loss {task.fields[loss]:.2f}", fields={"loss": 1.0},
                      plain_every_s=0.0) as advance:
        for step in range(4):
            advance(1, loss=0.5 / (step + 1))
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"decoding 4 images: 1/4 \(25%\)  [\d.]+/s  ETA \d+ s  loss 0\.50", lines[0]), lines
    assert re.fullmatch(r"decoding 4 images: 4/4 done in [\d.]+ s  [\d.]+/s  loss 0\.12", lines[-1]), lines
    assert "\x1b[" not in "".join(lines)  # no terminal control codes in a log


def test_quiet_progress_prints_nothing(capsys):
    with progress_bar("silent", 3, enabled=False) as advance:
        advance(3)
    assert capsys.readouterr().out == ""


def test_training_logs_each_epoch_progress_off_a_terminal(tiny_config, capsys):
    train(replace(tiny_config, epochs=1), quiet=False)
    out = capsys.readouterr().out
    assert re.search(r"^epoch 1/1: \d+/\d+ done in [\d.]+ s  [\d.]+/s  loss [\d.]+  acc [\d.]+%  \d+ img/s$", out,
                     re.MULTILINE), out
