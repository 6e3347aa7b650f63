"""Hypothesis stateful test: random operation sequences never break the e-ticket invariants."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ledger.eticket.testing import World, make_world

TRUCKS = ["TR-1", "TR-2", "TR-3"]
SITES = ["S-001", "S-002", "S-003"]
VOLUMES = ["4", "10", "16", "18", "20"]
POINTS = [
    ("29.700000", "106.515580", "35"),
    ("29.680000", "106.491090", "75"),
    ("29.651000", "106.601000", "0"),
    ("29.700000", "106.560000", "30"),
]


class EticketInvariants(RuleBasedStateMachine):
    """Drives one world with random issue / void / exit / GPS / receipt / tick / penalty operations."""

    world: World

    def __init__(self) -> None:
        super().__init__()
        self.tickets: list[str] = []
        self.serial = 0

    @initialize()
    def setup(self) -> None:
        self.world = make_world()
        self.world.approved_permit("PM-1", quota="100", companies=("C-01", "C-02"))
        self.world.approved_permit("PM-2", quota="60", project="P-002", actor="operator:u1", days=1)

    def _submit_and_check(self, op: str, *args: object, **kw: object) -> None:
        before = self.world.machine.digest()
        out = getattr(self.world, op)(*args, **kw)
        if not out.ok:
            assert self.world.machine.digest() == before, (op, out.code)

    @rule(
        truck=st.sampled_from(TRUCKS),
        site=st.sampled_from(SITES),
        volume=st.sampled_from(VOLUMES),
        permit=st.sampled_from(["PM-1", "PM-2"]),
        reuse=st.booleans(),
    )
    def issue(self, truck: str, site: str, volume: str, permit: str, reuse: bool) -> None:
        if reuse and self.tickets:
            tid = self.tickets[-1]
        else:
            self.serial += 1
            tid = f"T-{self.serial}"
        self._submit_and_check("issue", tid, permit=permit, truck=truck, site=site, volume=volume, actor="operator:u1")
        if tid in self.world.machine.state.tables["ticket"] and tid not in self.tickets:
            self.tickets.append(tid)

    @precondition(lambda self: self.tickets)
    @rule(data=st.data(), covered=st.booleans(), wrong_plate=st.booleans())
    def depart(self, data: st.DataObject, covered: bool, wrong_plate: bool) -> None:
        tid = data.draw(st.sampled_from(self.tickets))
        plate = "渝A99999" if wrong_plate else None
        self._submit_and_check("depart", tid, plate=plate, covered=covered, actor="operator:u1")

    @precondition(lambda self: self.tickets)
    @rule(data=st.data(), point=st.sampled_from(POINTS), batch=st.integers(0, 3))
    def positions(self, data: st.DataObject, point: tuple[str, str, str], batch: int) -> None:
        tid = data.draw(st.sampled_from(self.tickets))
        self._submit_and_check("positions", tid, [point], batch=f"b{batch}", actor="operator:u1")

    @precondition(lambda self: self.tickets)
    @rule(data=st.data(), volume=st.sampled_from(VOLUMES), wrong_site=st.booleans())
    def receive(self, data: st.DataObject, volume: str, wrong_site: bool) -> None:
        tid = data.draw(st.sampled_from(self.tickets))
        actor = "gate:disposal:S-404" if wrong_site else None
        self._submit_and_check("receive", tid, volume=volume, actor=actor)

    @precondition(lambda self: self.tickets)
    @rule(data=st.data())
    def void(self, data: st.DataObject) -> None:
        tid = data.draw(st.sampled_from(self.tickets))
        before = self.world.machine.digest()
        if not self.world.submit("ticket.void", {"ticket_id": tid, "reason": "取消"}).ok:
            assert self.world.machine.digest() == before

    @rule(seconds=st.sampled_from([60, 1800, 3 * 3600, 26 * 3600]))
    def tick(self, seconds: int) -> None:
        self.world.advance(seconds)
        assert self.world.tick().ok

    @rule(truck=st.sampled_from(TRUCKS), days=st.integers(1, 2))
    def suspend(self, truck: str, days: int) -> None:
        self.serial += 1
        self.world.ok(
            "penalty.record",
            {
                "penalty_id": f"PN-{self.serial}",
                "target_kind": "truck",
                "target_id": truck,
                "amount_yuan": 100,
                "measures": [{"kind": "suspend", "days": days}],
            },
            "enforcement:u2",
        )

    @invariant()
    def quotas_and_loads(self) -> None:
        tables = self.world.machine.state.tables
        tickets = tables["ticket"].values()
        for permit in tables["permit"].values():
            used = sum(
                t.volume_l
                for t in tickets
                if t.permit_id == permit.permit_id and t.state in ("issued", "departed", "received")
            )
            assert permit.issued_l == used <= permit.quota_l
        for site in tables["site"].values():
            pending = sum(
                t.volume_l for t in tickets if t.site_id == site.site_id and t.state in ("issued", "departed")
            )
            assert site.pending_l == pending >= 0 and site.load_l >= 0
        departed = Counter(t.truck_id for t in tickets if t.state == "departed")
        assert all(n <= 1 for n in departed.values())

    @invariant()
    def single_use(self) -> None:
        exits: Counter[str] = Counter()
        receipts: Counter[str] = Counter()
        for tx, _, out in self.world.log:
            if out.ok and tx.type == "gate.exit":
                exits[tx.payload["ticket_id"]] += 1
            elif out.ok and tx.type == "gate.receipt":
                receipts[tx.payload["ticket_id"]] += 1
        assert all(n == 1 for n in exits.values()) and all(n == 1 for n in receipts.values())
        assert set(receipts) <= set(exits)

    def teardown(self) -> None:
        if hasattr(self, "world"):
            assert self.world.replay().digest() == self.world.machine.digest()


EticketInvariants.TestCase.settings = settings(
    max_examples=75,
    stateful_step_count=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_eticket_invariants = EticketInvariants.TestCase
