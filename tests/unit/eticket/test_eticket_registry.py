"""Registry rules: creation, updates, references, duplicate ids and plates, tenants."""

from __future__ import annotations

from ledger.eticket import queries
from ledger.eticket.testing import PERSON, PROJECT_LOC, make_world

PROJECT = {
    "project_id": "P-X",
    "name": "新项目",
    "contractor_org_id": "ORG-001",
    "location": PROJECT_LOC,
    "planned_volume_m3": "1000",
}


def test_registry_creates_objects() -> None:
    """The standard registry creates orgs, projects, sites, companies, trucks and a driver."""
    world = make_world()
    tables = world.machine.state.tables
    assert set(tables["site"]) == {"S-001", "S-002", "S-003"}
    assert tables["truck"]["TR-3"].plate == "渝BD12345"
    assert tables["driver"]["D-1"].person_hash == PERSON
    assert queries.truck_by_plate(world.machine, "渝A12345")["truck_id"] == "TR-1"  # type: ignore[index]


def test_duplicate_id_refused() -> None:
    """Re-creating an existing id (without update) is refused with duplicate_id and changes nothing."""
    world = make_world()
    before = world.machine.digest()
    out = world.submit("registry.org", {"org_id": "ORG-001", "name": "冒名", "kind": "contractor"})
    assert out.code == "duplicate_id"
    assert world.machine.digest() == before


def test_update_requires_existing() -> None:
    """update=true replaces the fields of an existing object; on a missing id it is unknown_<kind>."""
    world = make_world()
    assert world.submit("registry.company", {"company_id": "C-01", "name": "新名", "update": True}).ok
    assert world.machine.state.tables["company"]["C-01"].name == "新名"
    assert world.submit("registry.company", {"company_id": "C-99", "name": "x", "update": True}).code == (
        "unknown_company"
    )


def test_site_update_keeps_load() -> None:
    """Updating a site (e.g. its capacity) keeps its received load and reservations."""
    world = make_world()
    world.approved_permit()
    assert world.issue("T-1").ok
    site = world.machine.state.tables["site"]["S-001"]
    out = world.submit(
        "registry.site",
        {
            "site_id": "S-001",
            "name": "扩容",
            "kind": "recycling",
            "capacity_m3": "200000",
            "location": {"lat": "29.61011", "lon": "106.40552"},
            "update": True,
        },
    )
    assert out.ok
    new = world.machine.state.tables["site"]["S-001"]
    assert new.pending_l == site.pending_l == 16000 and new.capacity_l == 200_000_000


def test_unknown_references_refused() -> None:
    """A project of an unknown org, a truck or a driver of an unknown company are refused."""
    world = make_world()
    assert world.submit("registry.project", {**PROJECT, "contractor_org_id": "ORG-404"}).code == "unknown_org"
    assert (
        world.submit(
            "registry.truck",
            {"truck_id": "TR-9", "plate": "渝A99999", "company_id": "C-404", "capacity_m3": "18"},
        ).code
        == "unknown_company"
    )
    assert (
        world.submit("registry.driver", {"driver_id": "D-9", "company_id": "C-404", "person_hash": PERSON}).code
        == "unknown_company"
    )
    assert (
        world.submit(
            "registry.site",
            {
                "site_id": "S-9",
                "name": "x",
                "kind": "landfill",
                "capacity_m3": "10",
                "location": PROJECT_LOC,
                "operator_org_id": "ORG-404",
            },
        ).code
        == "unknown_org"
    )


def test_project_contractor_must_be_contractor_org() -> None:
    """A project's contractor_org_id must be an organisation of kind contractor."""
    world = make_world()
    assert world.submit("registry.project", {**PROJECT, "contractor_org_id": "ORG-T01"}).code == "unknown_org"


def test_contractor_registers_only_own_projects() -> None:
    """A contractor actor may register its own project but not one of another contractor (forbidden)."""
    world = make_world()
    assert world.submit("registry.project", PROJECT, "contractor:ORG-001").ok
    out = world.submit("registry.project", {**PROJECT, "project_id": "P-Y"}, "contractor:ORG-002")
    assert out.code == "forbidden"


def test_company_registers_only_own_trucks() -> None:
    """A transport-company actor registers its own trucks; another company's truck is forbidden."""
    world = make_world()
    truck = {"truck_id": "TR-9", "plate": "渝A99999", "company_id": "C-01", "capacity_m3": "18"}
    assert world.submit("registry.truck", truck, "company:C-02").code == "forbidden"
    assert world.submit("registry.truck", truck, "company:C-01").ok


def test_plate_belongs_to_one_truck() -> None:
    """Registering a second truck with an already registered plate is refused (duplicate_id)."""
    world = make_world()
    out = world.submit(
        "registry.truck", {"truck_id": "TR-9", "plate": "渝A12345", "company_id": "C-01", "capacity_m3": "18"}
    )
    assert out.code == "duplicate_id"


def test_truck_plate_change_moves_index() -> None:
    """Changing a truck's plate by update frees the old plate and indexes the new one."""
    world = make_world()
    assert world.ok(
        "registry.truck",
        {"truck_id": "TR-1", "plate": "渝A77777", "company_id": "C-01", "capacity_m3": "18", "update": True},
    )
    assert queries.truck_by_plate(world.machine, "渝A12345") is None
    assert queries.truck_by_plate(world.machine, "渝A77777")["truck_id"] == "TR-1"  # type: ignore[index]


def test_registry_actor_kinds() -> None:
    """Only operators/admins register orgs and sites; a gate actor is forbidden."""
    world = make_world()
    assert world.submit("registry.org", {"org_id": "O-9", "name": "x", "kind": "other"}, "gate:exit:P-001").code == (
        "forbidden"
    )
