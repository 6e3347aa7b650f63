"""``ledger governance``: incomplete or unreadable proposals are refused with one line and a reason code before
anything is signed or sent (the end-to-end runs are in tests/functional/test_governance.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.cli.main import main


@pytest.fixture
def consortium_dir(tmp_path: Path) -> Path:
    assert main(["consortium", "new", "--dir", str(tmp_path / "c")]) == 0
    return tmp_path / "c"


@pytest.mark.parametrize(("extra", "said"), [
    (["--action", "rotate_key", "--card", "card.json"], "rotate_key needs --member"),
    (["--action", "add_member"], "add_member needs --card"),
    (["--action", "add_member", "--card", "no-such-card.json"], "cannot read the card file"),
    (["--action", "set_parameters", "--parameters", "no-such.json"], "cannot read the parameters file"),
])
def test_an_incomplete_proposal_is_refused_before_it_is_sent(consortium_dir: Path, tmp_path: Path,
                                                              extra: list[str], said: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A proposal missing what its action needs exits non-zero with one line naming it and governance_invalid;
    no node is contacted (the URL is not listening)."""
    key = consortium_dir / "keys" / "chengguan.pem"
    code = main(["governance", "propose", "--proposal-id", "p1", *extra, "--consortium",
                 str(consortium_dir / "consortium.json"), "--member-key", str(key), "--node", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code != 0 and said in err and "[governance_invalid]" in err and "internal error" not in err
    assert len(err.strip().splitlines()) == 1
