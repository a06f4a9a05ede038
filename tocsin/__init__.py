"""Tocsin: an event-driven incident-response pipeline on Kafka."""
