"""Governance: policies (lifecycle gates), PII, keys, retention."""
