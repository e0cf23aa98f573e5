"""The session domain: aggregates, their events, value objects and errors. Pure."""
