"""All settings, read in one place.

Every setting comes from the environment (prefix ``MODELYARD_``); nothing else in the
package reads ``os.environ`` for configuration. Settings are built explicitly by the
entry points (CLI, server, tests) and passed down; there is no module-level instance.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".modelyard"


class Settings(BaseSettings):
    """modelyard's settings. See docs/configuration.md for the full list."""

    model_config = SettingsConfigDict(env_prefix="MODELYARD_", extra="ignore")

    home: Path = Field(default_factory=_default_home)
    """Where the database (by default), blobs and checkpoints live."""

    database_url: str | None = None
    """SQLAlchemy URL. Default: SQLite at ``<home>/modelyard.db``."""

    redis_url: str | None = None
    """Optional Redis for shared limits and caches (in-process when unset)."""

    database_pool_size: int = Field(default=10, ge=1, le=200)
    """PostgreSQL connections a gateway process keeps open (and as many more it may open
    for a burst, closed after it). Too few and a busy gateway opens and closes connections
    all the time; keep ``processes x 2 x this`` under the server's ``max_connections``."""

    # Intake: limits for the child process that parses untrusted GGUF headers.
    probe_timeout_s: float = 60.0
    probe_memory_mb: int = 2048

    # Cost model: the electricity price a hardware profile gets when none is given.
    electricity_per_kwh: float = Field(default=0.25, ge=0)
    """Electricity price per kWh, in the profile's currency, for ``hardware add|detect``."""

    # Engine defaults.
    n_ctx: int = 4096
    n_threads: int | None = None

    # Engine workers: one llama-server process per loaded model version (docs/gateway.md).
    llama_server: Path | None = None
    """The llama-server binary; default: the one ``make`` built (see llama_cpp_dir)."""
    llama_cpp_dir: Path | None = None
    """The llama.cpp build holding llama-server; default: scripts/build-llama-cpp.sh's."""
    llama_cpp_cache: Path | None = None
    """Where scripts/build-llama-cpp.sh caches builds, when not the default (also read there)."""
    worker_slots: int = Field(default=8, ge=1, le=256)
    """Generations one worker decodes at once (llama-server ``--parallel``, continuous batching)."""
    worker_ctx_per_slot: int = Field(default=4096, ge=256)
    """Context (prompt + answer tokens) each slot holds; capped by the model's own context."""
    worker_threads: int | None = Field(default=None, ge=1)
    """CPU threads per worker (llama-server ``-t``); default: the cores but one."""
    worker_kv_cache_type: str = Field(
        default="f16", pattern="^(f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1)$"
    )
    """KV-cache element type (``-ctk``/``-ctv``); q8_0 halves the cache's memory."""
    worker_gpu_layers: int | None = Field(default=None, ge=0)
    """Layers offloaded to the GPU (``-ngl``); default: all when the build has a GPU, else 0."""
    worker_batch_size: int = Field(default=2048, ge=32)
    """Tokens a worker decodes per step across its slots (``--batch-size``; llama.cpp's own
    default); the physical micro-batch stays llama.cpp's."""
    worker_prompt_cache_mb: int = Field(default=2048, ge=0)
    """Host memory a worker may use to keep finished prompts for reuse (``--cache-ram``).

    Bounded at 2 GiB by default (llama.cpp's own default, 8 GiB, lets one worker grow by
    gigabytes). Not smaller: measured on 8 slots, json_schema decoding ran 15 % slower with
    the cache off and a third slower with 256 MiB (docs/performance.md)."""
    worker_weight_repack: bool = False
    """llama.cpp's CPU weight repacking (faster prefill on some CPUs). Off by default: on an
    AVX2 EPYC, a repacked Q4_K model answered a cold prompt differently (garbled) from the
    same prompt served from the prompt cache; without repacking both agree (docs/performance.md)."""
    worker_user: str = "nobody"
    """The unprivileged user a worker runs as when modelyard runs as root."""
    worker_start_timeout_s: float = Field(default=120.0, gt=0)
    """How long a worker may take to load its model and answer /health."""
    worker_backoff_cap_s: float = Field(default=30.0, gt=0)
    """Longest wait before restarting a worker that keeps dying (doubling from 1 s)."""
    trial_load_timeout_s: float = Field(default=120.0, gt=0)
    """How long a trial load (``modelyard models trial-load``) may take to load the model and
    answer one token before it counts as failed."""
    trial_load_memory_mb: int = Field(default=0, ge=0)
    """Address-space limit (``RLIMIT_AS``) of a trial-load worker; 0: 4 GiB plus three times
    the model's size."""
    trial_load_cpu_s: int = Field(default=300, ge=1)
    """CPU-time limit (``RLIMIT_CPU``) of a trial-load worker."""

    # Gateway (docs/gateway.md).
    gateway_workers: int = Field(default=2, ge=1)
    """Threads that run in-process embedding models (generation runs in engine workers)."""
    gateway_queue_size: int = Field(default=32, ge=0)
    """Requests per model that may wait beyond the worker's slots; then the gateway answers 429."""
    gateway_retry_after_s: int = Field(default=2, ge=1)
    gateway_memory_budget_mb: int = Field(default=8192, ge=64)
    """Loaded models are unloaded least-recently-used when this estimate would be exceeded."""
    gateway_max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    gateway_max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    gateway_max_n: int = Field(default=4, ge=1)
    """The largest ``n`` (choices per request) a client may ask for."""
    gateway_max_embedding_inputs: int = Field(default=256, ge=1)
    gateway_max_prompt_bytes: int = Field(default=64 * 1024, ge=1024)
    """The largest prompt (UTF-8 bytes of all message text, or of all completion prompts) a
    request may carry; larger ones get a 400 before any rendering or tokenization. The
    engine's tokenizer is superlinear on newline-dense text (docs/performance.md): raise this
    only with the context per slot."""
    gateway_max_messages: int = Field(default=2048, ge=1)
    """The most messages one chat request may carry (400 beyond)."""

    # Chat templates: a model's own Jinja template runs in child processes (docs/gateway.md).
    template_renderers: int = Field(default=2, ge=1, le=64)
    """Child processes that render chat templates (each renders one chat at a time)."""
    template_render_timeout_s: float = Field(default=5.0, gt=0)
    """Wall-clock budget for rendering one chat; a template that runs over is killed (400)."""
    template_render_memory_mb: int = Field(default=512, ge=64)
    """Memory cap (RLIMIT_DATA) of each template renderer process."""
    template_max_output_chars: int = Field(default=4 * 1024 * 1024, ge=4096)
    """The most characters one rendering of a chat template may produce (400 beyond)."""

    # Lifecycle (docs/lifecycle.md).
    policy_file: Path | None = None
    """Policy for stage transitions; default: modelyard.toml or policy.yaml in the home."""

    # Operators: who may change what (docs/operators.md).
    operator_session_hours: float = Field(default=8.0, gt=0)
    """How long a console session or a ``modelyard login`` token stays valid."""
    operator_session_idle_minutes: float = Field(default=60.0, gt=0)
    """A console session unused this long expires (the CLI token only by its age)."""
    oidc_issuer: str | None = None
    """The organisation's OpenID Connect issuer URL; unset: local accounts only."""
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    """The client secret, if the provider issued one (PKCE is used either way)."""
    oidc_cli_client_id: str | None = None
    """The public client (no secret) that ``modelyard login --sso`` uses for the device
    flow; default: ``oidc_client_id`` with its secret."""
    oidc_redirect_url: str | None = None
    """Where the provider sends the browser back: ``https://HOST/console/auth/callback``;
    default: derived from the request."""
    oidc_scopes: str = "openid profile email groups"
    oidc_groups_claim: str = "groups"
    oidc_username_claim: str = "preferred_username"
    oidc_role_map: str = ""
    """Group to role: ``"ml-admins=admin,ml-approvers=approver,staff=viewer"`` (a group may
    appear several times). A user in no mapped group cannot log in."""
    console_secure_cookies: bool | None = None
    """``Secure`` session cookies; default: when the request came over HTTPS (directly or
    as the reverse proxy's ``X-Forwarded-Proto`` says, from ``forwarded_allow_ips``)."""

    # Governance and audit (docs/governance.md).
    audit_checkpoint_every: int = Field(default=100, ge=1)
    """Sign a checkpoint (sequence number + head hash) every N audit records."""
    audit_checkpoint_interval_s: float = Field(default=60.0, gt=0)
    """…and at least every N seconds while records arrive (the gateway's background
    checkpointer): a crash (kill -9) loses at most this much signed evidence."""
    audit_witness: Path | None = None
    """The audit witness's Unix socket (``modelyard audit witness serve``). Unset: the key
    in ``<home>/audit`` signs — no evidence against whoever can write the home."""
    audit_witness_timeout_s: float = Field(default=30.0, gt=0)
    """How long the gateway and the CLI wait for the witness's answer."""
    audit_witness_dir: Path | None = None
    """The witness's own state directory (key or token config, journal); outside the home."""
    audit_witness_user: str = "modelyard-witness"
    """The OS user the witness drops to when started as root (not the gateway's user)."""
    audit_pubkey: Path | None = None
    """The witness's public key, pinned outside the home: ``audit verify`` checks against it."""
    audit_retention_days: int | None = Field(default=None, ge=1)
    """``modelyard audit purge`` removes records older than this (unset: keep all)."""
    audit_store_text: str = Field(default="text", pattern="^(text|hash)$")
    """``text``: prompts/answers stored encrypted (redacted per PII policy); ``hash``: digests."""
    pii_default_policy: str = Field(default="off", pattern="^(off|redact-logs|redact|block)$")
    """PII policy for keys and teams that set none."""
    pii_phone_regions: str = "US,GB,DE,FR,NL,ES,IT,BE,PL,SE"
    """Regions whose national phone formats the PII detector recognises (others need +CC)."""

    # Remote engines: OpenAI-compatible upstreams behind the gateway (docs/remote-engines.md).
    endpoint_key_file: Path | None = None
    """The AES-256 key that seals endpoint API keys; default: ``<home>/secrets/endpoints.key``
    (created 0600 on first use; never in the database)."""
    endpoint_connect_timeout_s: float = Field(default=5.0, gt=0)
    """How long connecting to an upstream replica may take before the next one is tried."""
    endpoint_read_timeout_s: float = Field(default=300.0, gt=0)
    """The longest silence in an upstream's answer (the wait for its first token included)."""
    endpoint_probe_timeout_s: float = Field(default=30.0, gt=0)
    """Per replica: registration's identity probe and a trial load's 1-token completion."""
    endpoint_health_interval_s: float = Field(default=10.0, gt=0)
    """How often a gateway checks each replica (``GET /v1/models``)."""
    endpoint_breaker_failures: int = Field(default=3, ge=1)
    """Consecutive failures (connect errors, 5xx, lost streams) that open a replica's circuit."""
    endpoint_breaker_cooldown_s: float = Field(default=15.0, gt=0)
    """How long an open circuit keeps a replica out before one probe may try it again."""
    endpoint_max_connections: int = Field(default=64, ge=1)
    """Idle (keep-alive) connections a gateway keeps to one endpoint version's replicas
    together; connections in use grow up to the version's in-flight limit."""
    endpoint_rules_refresh_s: float = Field(default=5.0, ge=0)
    """How long a gateway reuses the allow-list it read (a ``deny`` takes effect within it)."""

    # Replicas (docs/gateway.md, "Replicas").
    serve_workers: int = Field(default=1, ge=1, le=64)
    """Gateway processes ``modelyard serve`` runs on its one port (``--workers``); each has
    its own engine workers. More than one needs ``redis_url`` (shared limits)."""

    # Endpoint versions' admission (docs/remote-engines.md, "Limits").
    endpoint_max_in_flight: int = Field(default=256, ge=1)
    """Requests in flight from a gateway to each replica of an endpoint version (a request
    with ``n`` choices counts ``n``); the version takes this times its replicas, then 429."""

    # API keys' usage column (docs/gateway.md, "Keys").
    key_last_used_interval_s: float = Field(default=60.0, ge=0)
    """A key's ``last_used_at`` is written at most once per this many seconds per gateway
    process (in the background, not on the request's path), so the column is approximate
    to this interval; 0 writes it on every request."""

    # Response cache (docs/gateway.md, "Response cache"); off unless a key or team opts in.
    cache_default_ttl_s: int = Field(default=3600, ge=1)
    """How long a cached answer lives when the key's or team's setting names no TTL."""
    cache_hit_token_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    """The share of a cached answer's tokens that counts against budgets on a hit (0: free,
    1: as much as a fresh answer; rounded up to whole tokens)."""
    cache_max_entries: int = Field(default=10_000, ge=1)
    """Entries the in-process cache keeps (least recently used go first); Redis, when
    ``redis_url`` is set, bounds itself by its own memory policy and the TTLs."""
    cache_max_entry_bytes: int = Field(default=1_048_576, ge=1024)
    """Larger answers are served but not stored."""
    cache_redis_prefix: str = "modelyard:cache:"
    """Prefix of the cache's Redis keys (when ``redis_url`` is set)."""

    # Prefix reuse in engine workers (docs/gateway.md, "Prefix reuse").
    worker_slot_prompt_similarity: float = Field(default=0.5, ge=0.0, le=1.0)
    """A request goes to the idle slot holding the longest matching prefix when that prefix
    is more than this share of its prompt (llama-server ``--slot-prompt-similarity``); else
    to the least recently used slot, refilled from the prompt cache. 0 turns it off. Not
    llama.cpp's 0.1: then a short prompt that shares only the chat template's first tokens
    (4 of 30) takes over the slot holding a long system prompt."""
    worker_swa_full: bool = False
    """Keep the full sliding-window-attention KV cache (``--swa-full``) so that shared
    prefixes shorter than a sliding-window model's window (Gemma 3: 512 tokens) are reused
    too. Off by default: it multiplies such a model's sliding-window KV memory (the default
    model at 8 slots x 4096 tokens: 480 MiB instead of 120 MiB), and prefixes longer than
    the window are reused without it."""

    # Client commands (``modelyard batch …``): the gateway they talk to, as a key holder.
    url: str = "http://127.0.0.1:8080"
    """The gateway's base URL for client commands (``MODELYARD_URL``; ``/v1`` is added)."""
    api_key: SecretStr | None = None
    """The API key client commands send (``MODELYARD_API_KEY``); never printed."""

    # Batch API (docs/batch.md): /v1/files and /v1/batches.
    batch_max_file_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """The largest file ``POST /v1/files`` takes (413 above it)."""
    batch_max_lines: int = Field(default=50_000, ge=1)
    """The most requests one batch input file may hold."""
    batch_concurrency: int = Field(default=2, ge=1, le=256)
    """Lines a gateway process runs at once (the slots of a batch worker in ``idle`` mode)."""
    batch_engine: str = Field(default="auto", pattern="^(auto|idle|shared)$")
    """Where batch lines of local models run: ``idle``, on a worker of their own per version
    at the kernel's idle scheduling priority (SCHED_IDLE: only CPU time interactive work
    leaves); ``shared``, in the interactive workers' idle slots, the newest line stopped when
    an interactive request must wait; ``auto``: idle on CPU builds, shared on GPU builds."""
    batch_threads: int | None = Field(default=None, ge=1)
    """CPU threads of a batch worker (default: ``worker_threads``')."""
    batch_reserved_slots: int = Field(default=1, ge=0)
    """Engine slots a batch never takes, kept for interactive requests."""
    batch_poll_s: float = Field(default=1.0, gt=0)
    """How often an idle gateway process looks for a batch to run."""
    batch_lease_s: float = Field(default=30.0, gt=0)
    """A running batch is held by one gateway process for this long, renewed while it runs;
    after a crash another process (or the restarted one) takes it over once it lapses."""
    batch_max_attempts: int = Field(default=3, ge=1)
    """Tries per line for transient failures (5xx, engine restarts) before it is failed."""

    # Federated tuning (docs/tuning.md, "Federated tuning").
    flower_venv: Path | None = None
    """The virtual environment that holds Flower (``flwr``: flower-superlink, flower-supernode,
    flwr); default: ``.venv-flower`` beside the environment modelyard runs in, which ``make``
    builds. Flower lives apart because its pins clash with the gateway's (docs/tuning.md)."""

    @property
    def resolved_flower_bin(self) -> Path:
        if self.flower_venv is not None:
            return self.flower_venv / "bin"
        return Path(sys.prefix).parent / ".venv-flower" / "bin"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'modelyard.db'}"

    @property
    def blobs_dir(self) -> Path:
        return self.home / "blobs"

    @property
    def run_dir(self) -> Path:
        """Engine workers' status files (readable by ``models show`` from another process)."""
        return self.home / "run"

    @property
    def audit_dir(self) -> Path:
        """Audit signing key, subject secret and signed checkpoints: outside the database."""
        return self.home / "audit"

    def ensure_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
