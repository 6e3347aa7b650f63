"""Blueprints, one per audience; every one is registered by ``create_app``."""

from __future__ import annotations

from ticket_api.jsonbody import Blueprint
from ticket_api.views import (
    amendments,
    auth,
    cameras,
    dashboard,
    devices,
    drivers,
    gates,
    keys,
    lists,
    miniprogram,
    notifications,
    regulator,
    staff,
    system,
)

BLUEPRINTS: tuple[Blueprint, ...] = (
    system.blp,
    auth.blp,
    keys.blp,
    miniprogram.blp,
    staff.blp,
    lists.blp,
    drivers.blp,
    gates.blp,
    gates.trips_blp,
    regulator.blp,
    dashboard.page_blp,
    dashboard.blp,
    notifications.blp,
    devices.blp,
    cameras.blp,
    amendments.blp,
)
