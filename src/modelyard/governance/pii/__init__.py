"""PII: detection (e-mail, phone, card, IBAN, SSN, EU national IDs, IP, person names),
placeholder redaction and restoration, streaming, and the per-key policy."""
