"""The consortium (genesis) document: members, their keys and roles, the policy and parameters; new consortia."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.core.crypto import ED25519, SHA256, PrivateKey, PublicKey, digest
from ledger.core.encoding import b64, canonical, unb64
from ledger.core.validity import Validity
from ledger.errors import CardInvalid, ConsortiumError, Forbidden, LedgerError, UnknownSigner

#: a genesis whose members carry no validity and no card (chains made before member cards; still read)
FORMAT = "muck-ledger-consortium/v1"
#: a genesis assembled from member cards (each self-signed, with a validity period) and co-signed by the
#: founders (:mod:`ledger.core.genesis`)
FORMAT_V2 = "muck-ledger-consortium/v2"
#: the format of a member card and the prefix of the message its key signs (:mod:`ledger.core.card`)
CARD_FORMAT = "muck-ledger-member-card/v1"
CARD_CONTEXT = b"muck-ledger/member-card/v1\n"

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
    #: when the key's signatures count (None: a v1 genesis, no limit)
    validity: Validity | None = None
    #: the member card's self-signature (:meth:`card_message` signed by the key; None: a v1 genesis)
    card_signature: bytes | None = field(default=None, repr=False)

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def key_refusal(self, when: datetime) -> str | None:
        """None when a signature by this key counts at ``when`` (a block's time), else the reason code."""
        return None if self.validity is None else self.validity.refusal(when)

    def expired_at(self, when: datetime) -> bool:
        """True when ``when`` (a block's time) is after the key's ``not_after``: a co-signature of that block
        by this key does not count.  (Only the end is judged for co-signatures: an empty block of a skipped
        first batch is timed 1970, before every key's start.)"""
        return self.validity is not None and when > self.validity.end

    def card_body(self) -> dict[str, Any]:
        """What the member's key signs in its card (the validity is required)."""
        if self.validity is None:
            raise CardInvalid(f"member {self.name!r} has no validity period, so no card")
        return {
            "format": CARD_FORMAT,
            "name": self.name,
            "org": self.org,
            "roles": sorted(self.roles),
            "key_id": self.key_id,
            "algorithm": self.public_key.alg,
            "public_key": self.public_key.to_pem(),
            **self.validity.to_dict(),
        }

    def card_message(self) -> bytes:
        return CARD_CONTEXT + canonical(self.card_body())

    def check_card(self) -> None:
        """:class:`CardInvalid` unless the card's self-signature verifies over its content."""
        if self.card_signature is None or not self.public_key.verify(self.card_message(), self.card_signature):
            raise CardInvalid(f"member card of {self.name!r} is not signed by its own key {self.key_id} "
                              "(its content changed since it was made, or the signature is missing)")

    def to_dict(self) -> dict[str, Any]:
        if self.validity is not None and self.card_signature is not None:
            return {**self.card_body(),
                    "card_signature": {"alg": self.public_key.alg, "value": b64(self.card_signature)}}
        return {
            "name": self.name,
            "org": self.org,
            "roles": sorted(self.roles),
            "key_id": self.key_id,
            "algorithm": self.public_key.alg,
            "public_key": self.public_key.to_pem(),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Member:
        """A member entry of a genesis (v1) or a member card (v2: validity and self-signature, checked)."""
        pk = PublicKey.from_pem(raw["public_key"])
        if raw.get("algorithm", ED25519) != pk.alg:
            raise ConsortiumError(f"member {raw['name']!r}: algorithm does not match key")
        if raw.get("key_id") not in (None, pk.key_id):
            raise ConsortiumError(f"member {raw['name']!r}: key_id {raw['key_id']} does not match its key")
        validity = card_sig = None
        if raw.get("format") == CARD_FORMAT or "card_signature" in raw:
            if raw.get("format") != CARD_FORMAT:
                raise CardInvalid(f"member card of {raw['name']!r}: format must be {CARD_FORMAT!r}")
            validity = Validity(not_before=str(raw["not_before"]), not_after=str(raw["not_after"]))
            sig = raw.get("card_signature") or {}
            if sig.get("alg") != pk.alg:
                raise CardInvalid(f"member card of {raw['name']!r}: signature algorithm does not match its key")
            card_sig = unb64(str(sig.get("value", "")), what="card signature")
        member = cls(name=str(raw["name"]), org=str(raw.get("org", raw["name"])),
                     roles=frozenset(raw.get("roles", [])), public_key=pk, validity=validity,
                     card_signature=card_sig)
        if validity is not None:
            member.check_card()
        return member


@dataclass(frozen=True)
class Consortium:
    """The parsed genesis file, or the membership a governance vote made of it (:meth:`amended`)."""

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
        carded = [m.card_signature is not None for m in self.members]
        if any(carded) and not all(carded):
            raise ConsortiumError("either every member of a genesis comes with its card, or none")
        if any(m.validity is not None and m.card_signature is None for m in self.members):
            raise ConsortiumError("a member's validity period comes with its signed card")
        object.__setattr__(self, "_by_key", by_key)

    @property
    def format(self) -> str:
        """:data:`FORMAT_V2` for a genesis of member cards, :data:`FORMAT` for an older one."""
        return FORMAT_V2 if self.members and self.members[0].card_signature is not None else FORMAT

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
            "format": self.format,
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

    def amended(self, *, members: Sequence[Member] | None = None, parameters: Mapping[str, Any] | None = None,
                policy: Mapping[str, Sequence[str]] | None = None) -> Consortium:
        """The membership after a governance change (:mod:`ledger.core.governance`): the same chain, so the
        same name, origin, algorithms and genesis hash (block 0 links to the genesis, every later block too);
        ``ConsortiumError`` when the new membership does not hold (no node left, a name or key twice)."""
        new = Consortium(
            name=self.name, origin=self.origin, members=tuple(self.members if members is None else members),
            parameters=dict(self.parameters if parameters is None else parameters),
            policy={k: list(v) for k, v in (self.policy if policy is None else policy).items()},
            signature_alg=self.signature_alg, digest_alg=self.digest_alg,
        )
        object.__setattr__(new, "_genesis_hash", self.genesis_hash)
        return new

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Consortium:
        """Parse a genesis document, checking every key id against its key."""
        try:
            fmt = doc.get("format")
            if fmt not in (FORMAT, FORMAT_V2):
                raise ConsortiumError(f"consortium format must be {FORMAT_V2!r} (or the older {FORMAT!r})")
            members = [Member.from_dict(raw) for raw in doc["members"]]
            if (fmt == FORMAT_V2) != all(m.card_signature is not None for m in members):
                raise ConsortiumError(f"a {FORMAT_V2} genesis lists member cards, a {FORMAT} one plain members")
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
    """Make a v1 consortium with every member's fresh key minted here, in memory (tests and benchmarks, through
    :mod:`ledger.testing`); deployments and the demo found one from member cards co-signed by every member
    (:mod:`ledger.core.genesis`, :func:`ledger.store.founding.found_consortium`)."""
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
