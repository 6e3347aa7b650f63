"""A new consortium of department nodes and the API's gateway member, with fresh keys (kept in memory).

What ``ledger consortium new`` and the local demo consortium start from; writing the keys is
:mod:`ledger.store.keyfiles`' job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.core.consortium import Consortium, MemberSpec, create
from ledger.core.crypto import PrivateKey

#: The four approving departments of the load model, as node members.
DEPARTMENTS: tuple[tuple[str, str], ...] = (
    ("chengguan", "城市管理局"),
    ("zhujian", "住房和城乡建设委员会"),
    ("jiaotong", "交通运输局"),
    ("shengtai", "生态环境局"),
)

#: The member whose key the ticket API signs with.
GATEWAY = MemberSpec(name="gateway", org="治理中心接口服务", roles=("gateway",))


def department_members(nodes: int) -> list[MemberSpec]:
    """``nodes`` node members (城管, 住建, 交通, 生态环境, then ``nodeN``) that also approve, and the gateway."""
    specs = []
    for i in range(nodes):
        n, org = DEPARTMENTS[i] if i < len(DEPARTMENTS) else (f"node{i}", f"成员单位{i}")
        specs.append(MemberSpec(name=n, org=org, roles=("node", "approver")))
    return [*specs, GATEWAY]


def new_consortium(
    *, nodes: int = 4, parameters: Mapping[str, Any] | None = None, name: str = "test-chain"
) -> tuple[Consortium, dict[str, PrivateKey]]:
    """A consortium of :func:`department_members` with a fresh key each."""
    return create(name=name, origin=f"muck-ledger.example/{name}", members=department_members(nodes),
                  parameters=parameters)
