"""The disposal gate's measure: a volume, a net weight, or a weighbridge's gross and tare (issue 14 part 6)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ticket_api.adapter.weighing import measure
from ticket_api.errors import Refused


def test_measures_the_ledger_accepts_pass_as_strings() -> None:
    """Volume, net weight, gross+tare (with or without a matching net) become the payload's decimal strings."""
    assert measure({"volume_m3": Decimal("15.8")}) == {"volume_m3": "15.8"}
    assert measure({"weight_t": Decimal("27")}) == {"weight_t": "27"}
    assert measure({"gross_t": Decimal("45.2"), "tare_t": Decimal("18.2")}) == {"gross_t": "45.2", "tare_t": "18.2"}
    assert measure({"gross_t": Decimal("45.2"), "tare_t": Decimal("18.2"), "weight_t": Decimal("27.0")})["weight_t"]


@pytest.mark.parametrize(("data", "field"), [
    ({}, "volume_m3"),
    ({"gross_t": Decimal("45")}, "tare_t"),
    ({"tare_t": Decimal("18")}, "gross_t"),
    ({"gross_t": Decimal("18"), "tare_t": Decimal("18")}, "tare_t"),
    ({"gross_t": Decimal("18"), "tare_t": Decimal("20")}, "tare_t"),
    ({"gross_t": Decimal("45"), "tare_t": Decimal("18"), "weight_t": Decimal("20")}, "weight_t"),
])
def test_bad_weighings_are_refused_naming_the_field(data: dict[str, Any], field: str) -> None:
    """Each combination the ledger would refuse is ``bad_weighing`` (422) with the field to fix."""
    with pytest.raises(Refused) as err:
        measure(data)
    assert err.value.reason == "bad_weighing" and field in err.value.fields and err.value.http_status == 422
