"""system.tick as the scheduler submits it: signed by the scheduling node, bounded by block time, idempotent."""

from __future__ import annotations

from ledger.eticket.params import Params
from ledger.eticket.testing import make_world


def test_tick_naming_its_node_must_be_signed_by_that_node() -> None:
    """A tick ``system:scheduler:<node>`` is valid signed by that node's key, forbidden signed by another
    member (another node, or the gateway)."""
    world = make_world()
    assert world.submit("system.tick", {}, "system:scheduler:chengguan", signer="chengguan").ok
    assert world.submit("system.tick", {}, "system:scheduler:chengguan", signer="zhujian").code == "forbidden"
    assert world.submit("system.tick", {}, "system:scheduler:chengguan", signer="gateway").code == "forbidden"


def test_far_future_tick_expires_nothing() -> None:
    """A tick timed far ahead of its block is refused (bad_time) and expires nothing: only the block time
    drives the time rules."""
    world = make_world()
    world.approved_permit("PM-1", days=1)
    assert world.issue("T-1").ok
    future = world.clock + 30 * 86400
    out = world.submit("system.tick", {}, "system:scheduler:chengguan", signer="chengguan", at=future)
    assert out.code == "bad_time"
    assert world.machine.state.tables["ticket"]["T-1"].state == "issued"
    assert world.machine.state.tables["permit"]["PM-1"].state == "approved"


def test_duplicate_ticks_have_the_effect_of_one() -> None:
    """Two ticks from two schedulers (a takeover) at one block time: the second finds nothing due, and the
    state is the same as after one tick."""
    one, two = make_world(), make_world()
    for world in (one, two):
        world.approved_permit("PM-1", days=1)
        assert world.issue("T-1").ok
        world.advance(86400 + 1)
    first = one.submit("system.tick", {}, "system:scheduler:chengguan", signer="chengguan")
    assert {"event": "ticket_expired", "ticket_id": "T-1"} in first.events
    again = one.submit("system.tick", {}, "system:scheduler:zhujian", signer="zhujian")
    assert again.ok and again.events == ()
    assert two.submit("system.tick", {}, "system:scheduler:zhujian", signer="zhujian").ok
    assert one.machine.state.tables["ticket"]["T-1"] == two.machine.state.tables["ticket"]["T-1"]
    assert one.machine.state.tables["permit"]["PM-1"] == two.machine.state.tables["permit"]["PM-1"]


def test_short_windows_in_decimal_units() -> None:
    """ticket_validity_h, receipt_margin_min and min_trip_minutes take decimals (short windows for tests and
    drills); whole numbers read as before."""
    p = Params.from_mapping({"ticket_validity_h": "0.002", "receipt_margin_min": "0.05", "min_trip_minutes": "0.1"})
    assert (p.ticket_validity_s, p.receipt_margin_s, p.min_trip_s) == (7, 3, 6)
    assert Params.from_mapping({"ticket_validity_h": 24, "receipt_margin_min": 60}) == Params()
