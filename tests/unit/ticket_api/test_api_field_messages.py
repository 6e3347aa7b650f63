"""Field validation messages follow Accept-Language: Chinese by default, English on request."""

from __future__ import annotations

from ticket_api.field_messages import localise, translate


def test_marshmallow_defaults_and_parametrised_messages_in_chinese() -> None:
    """Exact and parametrised marshmallow messages (lengths, ranges, choices) translate; values survive."""
    assert translate("Missing data for required field.") == "缺少必填字段"
    assert translate("Length must be between 1 and 1000.") == "长度必须在 1 到 1000 之间"
    assert translate("Must be greater than or equal to 1 and less than or equal to 50.") == "必须在 1 到 50 之间"
    assert translate("Must be one of: exit, disposal.") == "必须是以下之一：exit, disposal"
    assert translate("Not a valid aware datetime.").startswith("不是带时区的有效时间")
    assert translate("The truck's registered terminal is GPS-9900.") == "该车登记的终端为 GPS-9900"
    assert translate("no pattern knows this") == "no pattern knows this"


def test_a_fields_tree_is_localised_but_ids_are_not() -> None:
    """Nested per-item messages are translated; English is as written; a bare value (an id) is untouched."""
    tree = {"devices": {"3": {"id": ["Unknown truck plate."]}}, "violation_id": "unknown"}
    assert localise(tree, "zh") == {"devices": {"3": {"id": ["车牌未在账本登记"]}}, "violation_id": "unknown"}
    assert localise(tree, "en") == tree
