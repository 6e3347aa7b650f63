"""Read side, statistics, projection tables, personal-data store, reason catalogue, digest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from ledger.eticket import CODES, describe, queries
from ledger.eticket.errors import PayloadError, message
from ledger.eticket.personal import matches, person_hash
from ledger.eticket.testing import World, make_world
from ledger.store import eticket_projection as projection
from ledger.store.personal_store import erase_person, load_person, metadata, store_person

DOC = Path(__file__).resolve().parents[3] / "docs" / "ETICKET.md"


def _busy_world() -> World:
    world = make_world()
    world.approved_permit("PM-1")
    for i, (site, vol) in enumerate((("S-001", "16"), ("S-002", "10"), ("S-003", "12"))):
        tid = f"T-{i}"
        world.issue(tid, site=site, volume=vol, truck="TR-1")
        world.depart(tid)
        world.advance(1200)
        world.receive(tid, volume=vol)
    world.issue("T-9", truck="TR-2")
    return world


def test_ticket_view() -> None:
    """The ticket view names project, site, truck and shows the receipt."""
    world = _busy_world()
    view = queries.ticket(world.machine, "T-0")
    assert view is not None
    assert view["state"] == "received" and view["truck"]["plate"] == "渝A12345"
    assert view["site"]["kind"] == "recycling" and view["measured_m3"] == "16"
    assert queries.ticket(world.machine, "nope") is None


def test_statistics_and_utilisation_rate() -> None:
    """Utilisation rate = recycled + backfilled volume / all received volume; coverage counts."""
    stats = queries.statistics(_busy_world().machine)
    assert stats["tickets_issued"] == 4 and stats["tickets_by_state"] == {"issued": 1, "received": 3}
    assert stats["utilisation_rate_pct"] == "73.68"  # (16 + 12) / 38
    assert (stats["projects_covered"], stats["trucks_covered"], stats["sites_covered"]) == (1, 2, 3)
    assert stats["median_approval_seconds"] == 0.0


def test_project_truck_site_views() -> None:
    """Project, truck and site views aggregate tickets, credit and load."""
    world = _busy_world()
    m = world.machine
    assert queries.project(m, "P-001")["received_m3"] == "38"  # type: ignore[index]
    assert queries.truck(m, "TR-1")["tickets"] == 3  # type: ignore[index]
    assert queries.tickets_of(m, "permit", "PM-1") == ["T-0", "T-1", "T-2", "T-9"]
    s = queries.site(m, "S-003")
    assert s is not None and s["load_rate_pct"] == "12.00" and not s["alarm"]
    assert [x["site_id"] for x in queries.sites(m)] == ["S-001", "S-002", "S-003"]


def test_recommend_sites_nearest_first() -> None:
    """Recommendations list sites with room for the volume, nearest first, excluding full ones."""
    m = _busy_world().machine
    assert [s["site_id"] for s in queries.recommend_sites(m, "P-001", "16")] == ["S-003", "S-002", "S-001"]
    assert [s["site_id"] for s in queries.recommend_sites(m, "P-001", "80")] == ["S-002", "S-001"]
    assert [s["site_id"] for s in queries.recommend_sites(m, "P-001", 16, kinds=["landfill"])] == ["S-002"]
    assert queries.recommend_sites(m, "P-404", 1) == []


def test_history_lists_touching_transactions() -> None:
    """history gives, in chain order, the ids of the valid transactions that touched an object."""
    world = _busy_world()
    ids = [tx.tx_id for tx, _, out in world.log if out.ok and tx.payload.get("ticket_id") == "T-0"]
    assert queries.history(world.machine, "ticket", "T-0") == ids
    truck_hist = queries.history(world.machine, "truck", "TR-1")
    assert set(ids) <= set(truck_hist)
    assert queries.history(world.machine, "bogus", "x") == []


def test_projection_rebuild_matches_state() -> None:
    """Rebuilding the projection from the log gives tables equal to the machine's state and digest."""
    world = _busy_world()
    engine = create_engine("sqlite://")
    machine = projection.rebuild(engine, world.consortium, [(tx, ctx) for tx, ctx, _ in world.log])
    assert machine.digest() == world.machine.digest()
    with engine.connect() as conn:
        rows = conn.execute(select(projection.TABLES["ticket"]).order_by("ticket_id")).mappings().all()
        assert [r["state"] for r in rows] == ["received", "received", "received", "issued"]
        assert conn.execute(select(func.count()).select_from(projection.permit_decisions)).scalar() == 4
        meta = dict(conn.execute(select(projection.projection_meta)).all())  # type: ignore[arg-type]
        assert meta["digest"] == machine.digest()
        n = conn.execute(select(func.count()).select_from(projection.tx_index)).scalar()
        assert n == sum(len(v) for v in machine.state.history.values())
    projection.rebuild(engine, world.consortium, [(tx, ctx) for tx, ctx, _ in world.log])  # idempotent


def test_person_hash_and_store() -> None:
    """The driver's clear data stays off-chain with a salt; the salted hash matches only with that salt."""
    salt = b"s" * 16
    fields = {"name": "张三", "id_number": "500101199001011234", "phone": "13800000000"}
    h = person_hash(salt, fields)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", h) and matches(salt, fields, h)
    assert person_hash(b"t" * 16, fields) != h
    with pytest.raises(PayloadError):
        person_hash(b"short", fields)
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as conn:
        digest = store_person(conn, "D-1", fields)
        row = load_person(conn, "D-1")
        assert row is not None and row["fields"] == fields and matches(row["salt"], fields, digest)
        erase_person(conn, "D-1")
        assert load_person(conn, "D-1") is None


def test_reason_catalogue_covers_documented_codes() -> None:
    """Every reason code in docs/ETICKET.md has a Chinese and English message, and vice versa."""
    doc = DOC.read_text(encoding="utf-8")
    section = doc[doc.index("## Reason codes") : doc.index("## Read side")]
    documented = set(re.findall(r"`([a-z_]+)`", section)) - {"apply", "zh", "en"}
    assert documented == set(CODES)
    for code in CODES:
        assert describe(code, "zh") != describe(code, "en-US")
    assert message("expired", "ticket=T-1") == "已过有效期：ticket=T-1"


def test_refusal_message_is_chinese_with_details() -> None:
    """A refused outcome carries the Chinese catalogue message followed by key=value details."""
    world = make_world()
    world.approved_permit()
    out = world.issue("T-1", volume="30")
    assert out.code == "over_capacity" and out.message.startswith("超出车辆核定装载量：")


def test_replay_gives_same_digest_and_refusals_change_nothing() -> None:
    """Replaying the log into a fresh machine gives the same digest; a refused transaction leaves the
    digest unchanged; any valid transaction changes it."""
    world = _busy_world()
    d = world.machine.digest()
    assert world.replay().digest() == d
    assert world.issue("T-0").code == "duplicate_id"
    assert world.machine.digest() == d
    assert world.issue("T-10", truck="TR-2").ok
    assert world.machine.digest() != d


def test_digest_independent_of_digest_calls() -> None:
    """Calling digest() in between (incremental hashing) or only at the end gives the same value."""
    world = _busy_world()
    fresh = world.replay()
    stepwise = type(world.machine).from_consortium(world.consortium)
    for tx, ctx, _ in world.log:
        stepwise.apply(tx, ctx)
        stepwise.digest()
    assert stepwise.digest() == fresh.digest() == world.machine.digest()
