"""Notifications: people are told what concerns them.

The notifier (``python -m ticket_api notify``, one process per API deployment, started by
``tools/serve.py``) follows the consortium's final blocks with a durable cursor in the API database
(:mod:`.follower`), derives events and their recipients from each block's transactions (:mod:`.events`,
pure but for its lookups), writes them to the outbox in the same database transaction as the cursor
advance (:mod:`.outbox`), and sends the WeChat ones at least once with retries (:mod:`.deliver`).  Staff
and other API users read their rows through ``GET /api/v1/notifications`` and its server-sent event
stream (``ticket_api.views.notifications``).
"""
