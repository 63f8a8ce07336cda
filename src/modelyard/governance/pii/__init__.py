"""PII: detection (e-mail, phone, card, IBAN, US SSN, national IDs scored by checksum, layout
and context, IP, person names from a list and from structural cues), placeholder redaction
and restoration, streaming that never releases part of an entity, and the per-key policy."""
