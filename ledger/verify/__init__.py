"""Verification over a store: the parallel chain verifier, replay through the rules, the cross-node audit and
provenance exports.
"""
