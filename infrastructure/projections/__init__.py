"""Projections of the event log: the session read model and the analytics tables."""
