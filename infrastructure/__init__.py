"""Adapters: persistence settings, SQL, directory store, ids, clock, hashing."""
