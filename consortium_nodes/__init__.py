"""Consortium nodes: each member keeps, checks and co-signs the chain; etcd or a solo node orders it."""
