"""The consortium (genesis) document: members, their keys and roles, the policy and parameters; new consortia."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.core.crypto import ED25519, SHA256, PrivateKey, PublicKey, digest
from ledger.core.encoding import canonical
from ledger.errors import ConsortiumError, Forbidden, LedgerError, UnknownSigner

FORMAT = "muck-ledger-consortium/v1"

#: Roles a member may hold.  ``node`` members run a ledger node and co-sign
#: block headers; the others submit transactions of the types the policy allows.
ROLES = frozenset(
    {"node", "gateway", "approver", "operator", "enforcement", "regulator", "admin", "gate"}
)

DEFAULT_PARAMETERS: dict[str, Any] = {
    "max_payload_bytes": 16384,
    "max_block_txs": 2000,
}

#: ``parameters["max_clock_skew_s"]`` when a consortium does not set it: seconds a block's time may lie
#: ahead of a node's clock for the node to co-sign its header (not spelt out in new genesis documents,
#: so existing ones keep their hash).
DEFAULT_MAX_CLOCK_SKEW_S = 600

#: Default policy: which roles may sign which transaction types ("*" = any other).
DEFAULT_POLICY: dict[str, list[str]] = {"*": ["gateway", "node", "admin"]}


@dataclass(frozen=True)
class Member:
    """One organisation's signing identity listed in the genesis file."""

    name: str
    org: str
    roles: frozenset[str]
    public_key: PublicKey

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "org": self.org,
            "roles": sorted(self.roles),
            "key_id": self.key_id,
            "algorithm": self.public_key.alg,
            "public_key": self.public_key.to_pem(),
        }


@dataclass(frozen=True)
class Consortium:
    """The parsed genesis file; immutable for the life of the chain."""

    name: str
    origin: str
    members: tuple[Member, ...]
    parameters: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_PARAMETERS))
    policy: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(DEFAULT_POLICY))
    signature_alg: str = ED25519
    digest_alg: str = SHA256
    _by_key: Mapping[str, Member] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_key: dict[str, Member] = {}
        names: set[str] = set()
        for m in self.members:
            if m.key_id in by_key:
                raise ConsortiumError(f"key id {m.key_id} is listed twice")
            if m.name in names:
                raise ConsortiumError(f"member name {m.name!r} is listed twice")
            unknown = m.roles - ROLES
            if unknown:
                raise ConsortiumError(f"member {m.name!r} has unknown roles {sorted(unknown)}")
            by_key[m.key_id] = m
            names.add(m.name)
        if not any("node" in m.roles for m in self.members):
            raise ConsortiumError("a consortium needs at least one member with role 'node'")
        object.__setattr__(self, "_by_key", by_key)

    # -- identities -------------------------------------------------------
    @property
    def nodes(self) -> tuple[Member, ...]:
        """Members that co-sign blocks, in genesis order."""
        return tuple(m for m in self.members if "node" in m.roles)

    @property
    def quorum(self) -> int:
        """Signatures needed for finality: more than two thirds of the nodes."""
        return (2 * len(self.nodes)) // 3 + 1

    def member(self, key_id: str) -> Member:
        """The member owning ``key_id``, or :class:`UnknownSigner`."""
        try:
            return self._by_key[key_id]
        except KeyError:
            raise UnknownSigner(f"key id {key_id} is not a member of consortium {self.name}") from None

    def by_name(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise UnknownSigner(f"no member named {name!r}")

    def authorize(self, key_id: str, tx_type: str) -> Member:
        """Return the signer if its roles allow ``tx_type`` (exact type, then prefix, then "*")."""
        member = self.member(key_id)
        allowed = self.allowed_roles(tx_type)
        if not member.roles & set(allowed):
            raise Forbidden(
                f"member {member.name} (roles {sorted(member.roles)}) may not submit {tx_type!r}"
            )
        return member

    def allowed_roles(self, tx_type: str) -> Sequence[str]:
        if tx_type in self.policy:
            return self.policy[tx_type]
        prefix = tx_type.split(".", 1)[0] + ".*"
        if prefix in self.policy:
            return self.policy[prefix]
        return self.policy.get("*", ())

    @property
    def max_payload_bytes(self) -> int:
        return int(self.parameters.get("max_payload_bytes", DEFAULT_PARAMETERS["max_payload_bytes"]))

    @property
    def max_block_txs(self) -> int:
        return int(self.parameters.get("max_block_txs", DEFAULT_PARAMETERS["max_block_txs"]))

    @property
    def max_clock_skew_s(self) -> int:
        """Seconds a block's time may lie ahead of a node's own clock when it co-signs the header (a block
        timed later is stored but not co-signed until the node's clock is that close to it)."""
        return int(self.parameters.get("max_clock_skew_s", DEFAULT_MAX_CLOCK_SKEW_S))

    # -- serialisation ----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "origin": self.origin,
            "signature_alg": self.signature_alg,
            "digest_alg": self.digest_alg,
            "parameters": dict(self.parameters),
            "policy": {k: list(v) for k, v in self.policy.items()},
            "members": [m.to_dict() for m in self.members],
        }

    @property
    def genesis_hash(self) -> str:
        """Hex digest of the canonical genesis document; block 0 links to it (computed once)."""
        cached: str | None = self.__dict__.get("_genesis_hash")
        if cached is None:
            cached = digest(canonical(self.to_dict()), self.digest_alg).hex()
            object.__setattr__(self, "_genesis_hash", cached)
        return cached

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Consortium:
        """Parse a genesis document, checking every key id against its key."""
        try:
            if doc.get("format") != FORMAT:
                raise ConsortiumError(f"consortium format must be {FORMAT!r}")
            members = []
            for raw in doc["members"]:
                pk = PublicKey.from_pem(raw["public_key"])
                if raw.get("algorithm", ED25519) != pk.alg:
                    raise ConsortiumError(f"member {raw['name']!r}: algorithm does not match key")
                if raw.get("key_id") not in (None, pk.key_id):
                    raise ConsortiumError(
                        f"member {raw['name']!r}: key_id {raw['key_id']} does not match its key"
                    )
                members.append(
                    Member(
                        name=str(raw["name"]),
                        org=str(raw.get("org", raw["name"])),
                        roles=frozenset(raw.get("roles", [])),
                        public_key=pk,
                    )
                )
            return cls(
                name=str(doc["name"]),
                origin=str(doc["origin"]),
                members=tuple(members),
                parameters=dict(doc.get("parameters", DEFAULT_PARAMETERS)),
                policy={k: list(v) for k, v in doc.get("policy", DEFAULT_POLICY).items()},
                signature_alg=str(doc.get("signature_alg", ED25519)),
                digest_alg=str(doc.get("digest_alg", SHA256)),
            )
        except ConsortiumError:
            raise
        except (KeyError, TypeError, AttributeError, LedgerError) as exc:
            raise ConsortiumError(f"invalid consortium document: {exc!r}") from exc


@dataclass(frozen=True)
class MemberSpec:
    """What :func:`create` needs to make one member."""

    name: str
    org: str
    roles: Iterable[str]


def create(
    *,
    name: str,
    origin: str,
    members: Sequence[MemberSpec],
    parameters: Mapping[str, Any] | None = None,
    policy: Mapping[str, Sequence[str]] | None = None,
) -> tuple[Consortium, dict[str, PrivateKey]]:
    """Make a consortium with fresh keys (in memory; :mod:`ledger.store.keyfiles` writes them)."""
    keys = {m.name: PrivateKey.generate() for m in members}
    consortium = Consortium(
        name=name,
        origin=origin,
        members=tuple(
            Member(name=m.name, org=m.org, roles=frozenset(m.roles), public_key=keys[m.name].public_key)
            for m in members
        ),
        parameters=dict(parameters or DEFAULT_PARAMETERS),
        policy={k: list(v) for k, v in (policy or DEFAULT_POLICY).items()},
    )
    return consortium, keys


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
