"""The e-ticket state machine: admission checks, ordered application, state digest."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ledger.core.builder import Outcome, TxContext
from ledger.core.consortium import Consortium
from ledger.core.transaction import Transaction
from ledger.errors import LedgerError
from ledger.eticket import (
    heads,
    pii,
    rules_amend,
    rules_camera,
    rules_keys,
    rules_permit,
    rules_registry,
    rules_ticket,
    rules_trip,
    rules_violation,
    schema,
)
from ledger.eticket.acts import ACT_FIELD
from ledger.eticket.errors import PayloadError, Refusal, message
from ledger.eticket.params import ACTOR_KINDS, Env, Event, Params, parse_actor
from ledger.eticket.state import State, Writes
from ledger.eticket.units import epoch, epoch_of

Handler = Callable[[Writes, dict[str, Any], Env], list[Event]]

HANDLERS: Mapping[str, Handler] = {
    "registry.org": rules_registry.registry_org,
    "registry.project": rules_registry.registry_project,
    "registry.site": rules_registry.registry_site,
    "registry.company": rules_registry.registry_company,
    "registry.truck": rules_registry.registry_truck,
    "registry.driver": rules_registry.registry_driver,
    "permit.apply": rules_permit.permit_apply,
    "permit.decide": rules_permit.permit_decide,
    "permit.revoke": rules_permit.permit_revoke,
    "permit.amend": rules_amend.permit_amend,
    "permit.amend_decide": rules_amend.permit_amend_decide,
    "ticket.issue": rules_ticket.ticket_issue,
    "ticket.void": rules_ticket.ticket_void,
    "gate.exit": rules_ticket.gate_exit,
    "trip.positions": rules_trip.trip_positions,
    "gate.receipt": rules_ticket.gate_receipt,
    "violation.report": rules_violation.violation_report,
    "violation.confirm": rules_violation.violation_step("confirm"),
    "violation.dismiss": rules_violation.violation_step("dismiss"),
    "violation.dispatch": rules_violation.violation_step("dispatch"),
    "violation.resolve": rules_violation.violation_step("resolve"),
    "penalty.record": rules_violation.penalty_record,
    "system.tick": rules_trip.system_tick,
    "registry.camera": rules_camera.registry_camera,
    "camera.sighting": rules_camera.camera_sighting,
    "registry.key": rules_keys.registry_key,
    "registry.key_revoke": rules_keys.registry_key_revoke,
}


class EticketMachine:
    """The business rules every consortium node runs on the ordered chain (a ``StateMachine``).

    Build one per node with :meth:`from_consortium`; feed :meth:`apply` every transaction of
    every block in order.  Read-side queries live in :mod:`ledger.eticket.queries`.
    """

    def __init__(self, *, consortium: Consortium) -> None:
        self.consortium = consortium
        self.params = Params.of(consortium)
        self.state = State()
        self.applied = 0
        #: block time (epoch s) of the last transaction seen; queries use it as "now"
        self.now = 0
        #: (height, block time) of every block seen, in order: turns a time into a height (revocation deltas)
        self.block_times: list[tuple[int, int]] = []
        #: read-side memos of queries (each keyed with the state it was computed on: ``applied``, ``now``)
        self.read_cache: dict[str, Any] = {}

    @classmethod
    def from_consortium(cls, consortium: Consortium) -> EticketMachine:
        """A fresh machine (empty state) with the consortium's ``eticket`` parameters."""
        return cls(consortium=consortium)

    @staticmethod
    def check_consortium(consortium: Consortium) -> None:
        """:class:`~ledger.errors.LedgerError` unless the ``eticket`` parameters of ``consortium`` (one a
        governance vote would make) are valid."""
        Params.of(consortium)

    def reconfigure(self, consortium: Consortium) -> None:
        """A governance vote changed the consortium's ``eticket`` parameters: they hold from the next block on
        (every node, and every replay, at the same block boundary)."""
        self.consortium = consortium
        self.params = Params.of(consortium)
        self.read_cache.clear()

    # -- StateMachine protocol -------------------------------------------
    def admit(self, tx: Transaction, consortium: Consortium) -> None:
        """Stateless checks at submission: a known type, a well-formed payload, an allowed actor kind.

        Raises :class:`~ledger.eticket.errors.PayloadError` (``malformed``; ``personal_data`` when
        :func:`ledger.eticket.pii.screen` finds personal data in the payload or actor), ``UnknownType`` or
        :class:`~ledger.eticket.errors.Refusal` (``forbidden``).
        """
        schema.validate(tx.type, tx.payload, max_points=self.params.max_points_per_batch)
        pii.screen(tx.payload, tx.actor)
        kind, _ = parse_actor(tx.actor)
        if kind not in ACTOR_KINDS[tx.type]:
            raise Refusal("forbidden", f"actor kind {kind!r} may not submit {tx.type}")

    def _evaluate(self, tx: Transaction, ctx: TxContext) -> tuple[Outcome, Writes | None]:
        """Run the rules for one transaction against the current state; the writes are not committed."""
        writes = Writes(self.state)
        try:
            p = schema.validate(tx.type, tx.payload, max_points=self.params.max_points_per_batch)
            pii.screen(tx.payload, tx.actor)
            kind, parts = parse_actor(tx.actor)
            if kind not in ACTOR_KINDS[tx.type]:
                raise Refusal("forbidden", f"actor={tx.actor} type={tx.type}")
            now = epoch_of(ctx.block_time)
            at = p["time"] if p.get("time") is not None else epoch(tx.timestamp, what="timestamp")
            if at > now + self.params.max_clock_skew_s:
                raise Refusal("bad_time", f"time={at} block_time={now}")
            env = Env(self.params, tx.actor, kind, parts, ctx.signer, at, now, ctx.tx_id)
            p["act_key"] = rules_keys.check_act(writes, tx.type, tx.payload, p.pop(ACT_FIELD), env)
            events = HANDLERS[tx.type](writes, p, env)
        except Refusal as exc:
            return Outcome(code=exc.reason, message=message(exc.reason, exc.detail), events=exc.events), None
        except PayloadError as exc:
            return Outcome(code=exc.reason, message=message(exc.reason, exc.message)), None
        except LedgerError as exc:
            return Outcome(code=exc.reason, message=message(exc.reason, exc.message)), None
        return Outcome(message=message("valid"), events=tuple(events)), writes

    def apply(self, tx: Transaction, ctx: TxContext) -> Outcome:
        """Apply one transaction; a refusal returns its reason code and leaves the state unchanged."""
        self.now = max(self.now, epoch_of(ctx.block_time))
        if not self.block_times or ctx.height > self.block_times[-1][0]:
            self.block_times.append((ctx.height, self.now))
        outcome, writes = self._evaluate(tx, ctx)
        if writes is not None:
            self.state.commit(writes.writes, writes.touched, ctx.tx_id, ctx.height)
            self.applied += 1
        return outcome

    def preview(self, tx: Transaction, ctx: TxContext) -> Outcome:
        """The verdict :meth:`apply` would give ``tx`` in a block at ``ctx`` now, changing nothing.

        A gate uses it to answer at once with the ledger's own rules on the current state; the verdict
        that counts is still the one given when the transaction is ordered (the state may change first).
        """
        return self._evaluate(tx, ctx)[0]

    def checkpoint_extension(self, height: int) -> str:
        """The checkpoint line committing to the object map after the block at ``height`` (nodes co-sign it;
        :mod:`ledger.eticket.heads`, docs/PROVENANCE.md)."""
        size, root = self.state.heads.root_at(height)
        return heads.extension_line(height, size, root)

    def digest(self) -> str:
        """Hex digest of the whole world state (equal on every node after the same transactions)."""
        return self.state.digest()
