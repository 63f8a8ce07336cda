"""Capacity planning: how many engine replicas and gateway processes a target load needs."""
