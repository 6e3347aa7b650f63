"""Tools apart from the product (not in the wheel): local launchers, demo seeding, load generators and
benchmarks, on one process helper.
"""
