"""Token store: hashed storage, expiry, revocation, WeChat users, CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ticket_api import cli
from ticket_api.db import ApiToken, make_engine
from ticket_api.errors import ApiError, Unauthenticated
from ticket_api.tokens import TokenStore, hash_token


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> TokenStore:
    return TokenStore(make_engine(f"sqlite:///{tmp_path}/api.sqlite"), clock=clock)


def test_only_the_sha256_of_a_token_is_stored(store: TokenStore) -> None:
    """The database holds SHA-256(token), never the token itself."""
    issued = store.issue(role="exit_gate", tenant="P-001", subject="gate-1")
    with store.session() as s:
        rows = s.scalars(select(ApiToken)).all()
    assert [r.token_hash for r in rows] == [hash_token(issued.token)]
    assert all(issued.token not in str(vars(r)) for r in rows)
    assert store.authenticate(issued.token).tenant == "P-001"


def test_expired_token_is_refused_token_expired(store: TokenStore, clock: Clock) -> None:
    """A token is accepted until its expiry and refused token_expired from then on."""
    issued = store.issue(role="regulator", tenant="CQ", subject="r", ttl=timedelta(hours=1))
    clock.now += timedelta(minutes=59)
    assert store.authenticate(issued.token).role == "regulator"
    clock.now += timedelta(minutes=1)
    with pytest.raises(Unauthenticated) as info:
        store.authenticate(issued.token)
    assert info.value.reason == "token_expired" and info.value.http_status == 401


def test_revoked_token_is_refused_token_revoked(store: TokenStore) -> None:
    """Revocation by token id takes effect at once; revoking twice is harmless."""
    issued = store.issue(role="contractor", tenant="ORG-001", subject="u")
    assert store.revoke(issued.id) and store.revoke(issued.id)
    assert not store.revoke("no-such-id")
    with pytest.raises(Unauthenticated) as info:
        store.authenticate(issued.token)
    assert info.value.reason == "token_revoked"
    assert store.list()[0].revoked_at is not None
    assert store.list(include_revoked=False) == []


@pytest.mark.parametrize("token", ["", "mtk_nope", "Bearer x", "x" * 500, "mtk_" + "a" * 43])
def test_unknown_tokens_are_token_invalid(store: TokenStore, token: str) -> None:
    """Anything not issued by this store is token_invalid."""
    with pytest.raises(Unauthenticated) as info:
        store.authenticate(token)
    assert info.value.reason == "token_invalid"


def test_unknown_role_is_refused(store: TokenStore) -> None:
    """Only the documented roles can be issued or bound."""
    with pytest.raises(ApiError):
        store.issue(role="king", tenant="x", subject="y")
    with pytest.raises(ApiError):
        store.bind_wechat("o1", role="king", tenant="x")


def test_wechat_binding_is_an_upsert(store: TokenStore) -> None:
    """Binding an openid again replaces its role and tenant."""
    store.bind_wechat("o1", role="contractor", tenant="ORG-001")
    store.bind_wechat("o1", role="approver", tenant="zhujian")
    user = store.wechat_user("o1")
    assert user is not None and (user.role, user.tenant) == ("approver", "zhujian")
    assert store.unbind_wechat("o1") and store.wechat_user("o1") is None


def test_cli_issue_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI prints a token once on issue, lists without secrets, and revokes by id."""
    url = f"sqlite:///{tmp_path}/cli.sqlite"
    assert (
        cli.main(
            [
                "--database-url",
                url,
                "tokens",
                "issue",
                "--role",
                "exit_gate",
                "--tenant",
                "P-001",
                "--subject",
                "gate-1",
                "--days",
                "30",
            ]
        )
        == 0
    )
    token = capsys.readouterr().out.strip()
    assert token.startswith("mtk_")
    assert cli.main(["--database-url", url, "tokens", "list"]) == 0
    listing = capsys.readouterr().out
    assert "gate-1" in listing and token not in listing
    token_id = listing.split("\t")[0]
    assert cli.main(["--database-url", url, "tokens", "revoke", token_id]) == 0
    assert cli.main(["--database-url", url, "tokens", "revoke", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and err.startswith("error:")
    assert (
        cli.main(
            [
                "--database-url",
                url,
                "users",
                "bind-wechat",
                "--openid",
                "o1",
                "--role",
                "contractor",
                "--tenant",
                "ORG-001",
            ]
        )
        == 0
    )
