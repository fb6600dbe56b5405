"""Operator control of the catalogue: the control topic applied, removals swept from lists.

Empty on purpose: import from the modules.
"""
