"""Evaluate and pilot: quality on the organisation's own data, bias probes, speed."""
