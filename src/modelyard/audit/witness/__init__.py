"""The audit witness: the holder of the checkpoint signing key, apart from the gateway.

* :mod:`.statements` — what it signs (heads, purges) and how a pinned public key checks it;
* :mod:`.signers` — the key: a file owned by the witness's user, or a PKCS#11 token;
* :mod:`.core` — its rules (sign only a head that extends the last; purge only a proven,
  old-enough range) and its append-only, fsynced journal;
* :mod:`.protocol`, :mod:`.server` — ``modelyard audit witness serve`` on a Unix socket;
* :mod:`.client` — what the gateway and the CLI use (the socket, or the in-home key).
"""
