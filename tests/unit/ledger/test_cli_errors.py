"""The ``ledger`` command line answers bad input with one line and a non-zero exit, never "internal error"."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.cli.main import main


@pytest.fixture
def consortium_dir(tmp_path: Path) -> Path:
    assert main(["consortium", "new", "--dir", str(tmp_path / "c")]) == 0
    return tmp_path / "c"


def test_demo_without_the_keys_names_what_is_missing(consortium_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """``ledger demo`` with a keys directory that lacks the members' keys says which (it ended in
    ``internal error: KeyError`` with exit 3 before) and exits 2."""
    code = main(["demo", "--db", f"sqlite:///{tmp_path / 'd.db'}", "--consortium",
                 str(consortium_dir / "consortium.json"), "--keys", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2
    assert "no key file for chengguan" in err and "gateway" in err and "internal error" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("args", "what"), [
    (["--blocks", "-1"], "--blocks"),
    (["--blocks", "100000000"], "--blocks"),
    (["--txs", "0"], "--txs"),
])
def test_demo_counts_are_bounded(consortium_dir: Path, tmp_path: Path, args: list[str], what: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Negative or huge block and transaction counts are refused by the argument parser (exit 2) instead of an
    AssertionError or a run without end."""
    with pytest.raises(SystemExit) as info:
        main(["demo", "--db", f"sqlite:///{tmp_path / 'd.db'}", "--consortium",
              str(consortium_dir / "consortium.json"), "--keys", str(consortium_dir / "keys"), *args])
    assert info.value.code == 2
    assert f"argument {what}: must be from" in capsys.readouterr().err


def test_verify_workers_must_be_at_least_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``ledger verify --workers -3`` (``internal error: ValueError`` before) and ``--workers 0`` (accepted
    silently before) are refused with one line and exit 2."""
    for n in ("-3", "0"):
        with pytest.raises(SystemExit) as info:
            main(["verify", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--workers", n])
        assert info.value.code == 2
        assert "argument --workers: must be from 1" in capsys.readouterr().err
