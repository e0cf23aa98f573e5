"""Use cases: one eventsourcing Application for sessions, plus the ports it needs."""
