"""The tamper-evident audit log: hash chain, signed checkpoints, verify, retention, erasure.

Public API (other areas call these):

* :func:`record_event` — append a non-request event (lifecycle transition, …);
* :class:`AuditLog` / :class:`AuditEntry` — append request records (the gateway);
* :func:`modelyard.audit.usage.usage_by` — token usage per team/key (chargeback);
* :func:`modelyard.audit.verify.verify` — re-walk the chain and the checkpoints.
"""

from modelyard.audit.log import Appended, AuditEntry, AuditLog, record_event

__all__ = ["Appended", "AuditEntry", "AuditLog", "record_event"]
