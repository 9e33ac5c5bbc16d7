"""check_logs.py itself: it fails on a secret in a log (raw or percent-encoded) and on too little
to check, and passes on clean logs, so python.security.logs means something."""

from __future__ import annotations

import pathlib
import urllib.parse

from check_logs import main


def make_logs(directory: pathlib.Path, secrets: list[str], leak: str = "") -> pathlib.Path:
    directory.mkdir()
    (directory / "secrets").write_text("".join(f"key {s}\n" for s in secrets))
    for i in range(5):
        (directory / f"{i}.log").write_text("a line of output\n" * 200 + (leak if i == 3 else ""))
    return directory


SECRETS = ["0123456789abcdef0123456789abcdef", "fedcba98765432100123456789abcdef", "p@ss/word:1"]


def test_clean_logs_pass_and_are_removed(tmp_path):
    logs = make_logs(tmp_path / "logs", SECRETS)
    assert main(logs) == 0
    assert not logs.exists()


def test_a_secret_in_a_log_fails(tmp_path):
    assert main(make_logs(tmp_path / "raw", SECRETS, leak=f"key={SECRETS[1]}")) == 1
    encoded = urllib.parse.quote(SECRETS[2], safe="")
    assert main(make_logs(tmp_path / "encoded", SECRETS, leak=f"url=redis://u:{encoded}@h")) == 1
    assert (tmp_path / "raw").exists()  # kept for a look


def test_too_little_to_check_fails(tmp_path):
    assert main(make_logs(tmp_path / "few", SECRETS[:2])) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(empty) == 1
