"""Webhooks from the event log: a catalogue, endpoints, signed at-least-once delivery, replay."""
