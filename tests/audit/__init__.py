"""Audit trail tests: time travel, tamper evidence, export and import, admin API, timeline."""
