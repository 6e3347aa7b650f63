"""Registry rules: organisations, projects, disposal sites, companies, trucks and drivers."""

from __future__ import annotations

from typing import Any

from ledger.eticket.errors import Refusal
from ledger.eticket.params import Env, Event, need
from ledger.eticket.records import Company, Driver, Org, Project, Site, Truck, evolve
from ledger.eticket.state import Writes


def _existing(w: Writes, kind: str, key: str, update: bool | None) -> Any:
    """The current record for an update (``unknown_<kind>`` if missing) or None for a create."""
    old = w.get(kind, key)
    if update:
        return need(old, f"unknown_{kind}", f"{kind}={key}")
    if old is not None:
        raise Refusal("duplicate_id", f"{kind}={key}")
    return None


def _org(w: Writes, org_id: str | None) -> Org | None:
    if org_id is None:
        return None
    rec: Org = need(w.get("org", org_id), "unknown_org", f"org={org_id}")
    return rec


def registry_org(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """Create or update an organisation."""
    old: Org | None = _existing(w, "org", p["org_id"], p["update"])
    new = Org(p["org_id"], p["name"], p["kind"], p["credit_code"])
    if old is not None:
        new = evolve(new, suspended_until=old.suspended_until)
    w.put("org", new.org_id, new)
    return []


def registry_project(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """Create or update a construction project; a contractor actor only for its own organisation."""
    env.require_own("contractor", p["contractor_org_id"], "contractor_org_id")
    old: Project | None = _existing(w, "project", p["project_id"], p["update"])
    if old is not None:
        env.require_own("contractor", old.contractor_org_id, "contractor_org_id")
    org = _org(w, p["contractor_org_id"])
    if org is not None and org.kind != "contractor":
        raise Refusal("unknown_org", f"org={org.org_id} kind={org.kind} (not a contractor)")
    lat, lon = p["location"]
    new = Project(
        p["project_id"],
        p["name"],
        p["contractor_org_id"],
        lat,
        lon,
        p["planned_volume_m3"],
        p["address"],
        p["district"],
        p["town"],
    )
    w.put("project", new.project_id, new)
    return []


def registry_site(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """Create or update a disposal site; an update keeps its load."""
    old: Site | None = _existing(w, "site", p["site_id"], p["update"])
    _org(w, p["operator_org_id"])
    lat, lon = p["location"]
    alarm = p["alarm_threshold_pct"] or env.params.alarm_threshold_pct
    new = Site(
        p["site_id"],
        p["name"],
        p["kind"],
        p["capacity_m3"],
        lat,
        lon,
        alarm,
        p["operator_org_id"],
        p["town"],
        load_l=p["initial_load_m3"] or 0,
    )
    if old is not None:
        new = evolve(
            new,
            load_l=old.load_l if p["initial_load_m3"] is None else p["initial_load_m3"],
            pending_l=old.pending_l,
            received_l=old.received_l,
            receipts=old.receipts,
        )
    new = evolve(new, alarm=new.load_l * 100 >= new.alarm_pct * new.capacity_l)
    w.put("site", new.site_id, new)
    return []


def registry_company(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """Create or update a transport company."""
    old: Company | None = _existing(w, "company", p["company_id"], p["update"])
    _org(w, p["org_id"])
    new = Company(p["company_id"], p["name"], p["org_id"], p["credit_code"], credit=env.params.credit_initial)
    if old is not None:
        new = evolve(new, credit=old.credit, suspended_until=old.suspended_until)
    w.put("company", new.company_id, new)
    return []


def registry_truck(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """Create or update a truck; a plate belongs to one truck; a company actor only for its own trucks."""
    env.require_own("company", p["company_id"], "company_id")
    old: Truck | None = _existing(w, "truck", p["truck_id"], p["update"])
    if old is not None:
        env.require_own("company", old.company_id, "company_id")
    need(w.get("company", p["company_id"]), "unknown_company", f"company={p['company_id']}")
    holder = w.state.plates.get(p["plate"])
    if holder is not None and holder != p["truck_id"]:
        raise Refusal("duplicate_id", f"plate={p['plate']} truck={holder}")
    new = Truck(
        p["truck_id"],
        p["plate"],
        p["company_id"],
        p["capacity_m3"],
        p["status"] or "active",
        p["terminal_id"],
        credit=env.params.credit_initial,
    )
    if old is not None:
        new = evolve(new, credit=old.credit, suspended_until=old.suspended_until)
    w.put("truck", new.truck_id, new)
    w.touch("company", new.company_id)
    return []


def registry_driver(w: Writes, p: dict[str, Any], env: Env) -> list[Event]:
    """Create or update a driver (hashes only); a company actor only for its own drivers."""
    env.require_own("company", p["company_id"], "company_id")
    old: Driver | None = _existing(w, "driver", p["driver_id"], p["update"])
    if old is not None:
        env.require_own("company", old.company_id, "company_id")
    need(w.get("company", p["company_id"]), "unknown_company", f"company={p['company_id']}")
    new = Driver(
        p["driver_id"],
        p["company_id"],
        p["person_hash"],
        p["licence_class"],
        credit=env.params.credit_initial,
    )
    if old is not None:
        new = evolve(new, credit=old.credit, suspended_until=old.suspended_until)
    w.put("driver", new.driver_id, new)
    return []
