"""The command line surface: version, help, subcommands, errors."""

import subprocess
import sys

import pytest

from singsong import __version__
from singsong.cli import build_parser, main

COMMANDS = {
    "accompany", "demo", "songbook", "separate", "data", "codec", "semantic", "tokenize", "train",
    "bundle", "serve", "study", "eval", "baseline",
}  # fmt: skip


def test_every_command_is_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) >= COMMANDS


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_python_dash_m_works():
    out = subprocess.run(
        [sys.executable, "-m", "singsong", "--help"], capture_output=True, text=True, check=True
    )
    assert "songbook" in out.stdout


def test_unknown_command_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["dance"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_library_errors_are_one_line_and_exit_2(tmp_path, capsys):
    code = main(
        [
            "separate",
            "run",
            str(tmp_path / "missing.wav"),
            "--out",
            str(tmp_path),
            "--separator",
            "repet-sim",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("singsong separate: error:") and "not found" in err
