"""The ``ledger`` command line: verify, audit, prove, report (with charts) and local consortium files.
"""
