"""The structure memory: chromadb collections on disk (or a chromadb HTTP server) holding every structure with
its formula, symmetry, energies, properties, provenance and CIF; searchable by text, formula and similarity."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import threading
import time
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import chromadb
import httpx
from chromadb.config import Settings as ChromaSettings
from joblib.externals.loky import get_reusable_executor
from pymatgen.core import Composition, Structure
from pymatgen.io.cif import CifWriter
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from memory.embedding import embed_texts
from memory.equivalence import Equivalence, reduced_for_matching
from memory.fingerprint import content_key, structure_fingerprint
from memory.index_table import HullRow, IndexTable, packed_row
from memory.keys import (
    CHEMSYS_KEY,
    CIF_KEY,
    CONFLICTING_VALUES_KEY,
    CREATED_AT_KEY,
    CRYSTAL_SYSTEM_KEY,
    DENSITY_KEY,
    DESCRIPTION_KEY,
    E_ABOVE_HULL_KEY,
    ELEMENT_FLAG_PREFIX,
    ELEMENTS_KEY,
    ENERGY_EV_KEY,
    ENERGY_KEY,
    ENERGY_PER_ATOM_KEY,
    EQUIVALENT_TO_KEY,
    EV_SUFFIX,
    FORMATION_ENERGY_PER_ATOM_KEY,
    FORMULA_KEY,
    HAS_ELEMENT_PREFIX,
    HULL_CONVERGED_KEY,
    HULL_ENERGY_KEY,
    HULL_POTENTIAL_KEY,
    HULL_PREFIX,
    HULL_RELAXATION_KEY,
    HULL_V_KEY,
    INDEX_V_KEY,
    MERGED_STORES_KEY,
    N_ELEMENTS_KEY,
    N_SITES_KEY,
    PARENT_IDS_KEY,
    POTENTIAL_KEY,
    PROPERTIES_JSON_KEY,
    PROVENANCE_JSON_KEY,
    REDUCED_FORMULA_KEY,
    SPACEGROUP_NUMBER_KEY,
    SPACEGROUP_SYMBOL_KEY,
    TAGS_KEY,
    TIME_KEY,
    TOOL_KEY,
    VOLUME_PER_ATOM_KEY,
    WRITE_ID_KEY,
    element_flag_key,
    has_element_key,
)

TEXT_COLLECTION = "structures"
FINGERPRINT_COLLECTION = "structure_fingerprints"
INDEX_COLLECTION = "structure_index"  # composition search: what it filters on, and the energy it ranks by
STAMP_COLLECTION = "structure_index_stamp"  # one entry: a token renewed by every index write (IndexTable freshness)
STAMP_ID = "generation"
TABLE_PAGE = 10_000  # index entries per get when the in-memory table is loaded
NO_ENERGY = 1e30  # the index energy of a record stored without one: after every energy
GET_CHUNK = 5000  # ids per chromadb write or get by ids
DEDUP_CANDIDATES = 8
PARALLEL_MIN = 512  # items from which add_many prepares structures in worker processes
LOOKAHEAD = 2  # chunks per worker prepared ahead of the writes
HTTP_RETRIES = 6  # ~16 s of reconnect attempts against a restarting chromadb server
TOKEN_AUTH_PROVIDER = "chromadb.auth.token_authn.TokenAuthClientProvider"
AUTH_HEADERS = ("Authorization", "X-Chroma-Token")  # what chromadb's token client can send the token in
T = TypeVar("T")

# Labels of a stored relaxation (properties): `converged` says whether it met its force threshold in its steps, and
# `relaxed` is True only then. An unconverged relaxation is stored, but as what it is: a geometry on the way to a
# minimum whose energy is only an upper bound of that minimum's.
RELAXED, CONVERGED = "relaxed", "converged"
UNCONVERGED_TAG = "unconverged"


def relaxation_labels(converged: bool) -> dict[str, bool]:
    """The properties that label a stored relaxation outcome: relaxed only when it converged."""
    return {RELAXED: bool(converged), CONVERGED: bool(converged)}


def relaxation_tags(converged: bool) -> list[str]:
    """The tag of a stored relaxation outcome: 'relaxed', or 'unconverged'."""
    return [RELAXED] if converged else [UNCONVERGED_TAG]


def is_relaxation(properties: dict[str, Any]) -> bool:
    """The record is the outcome of a relaxation, converged or not."""
    return CONVERGED in properties or bool(properties.get(RELAXED))


def is_converged_relaxation(properties: dict[str, Any]) -> bool:
    """The record is a relaxed structure (a minimum of its potential): labelled relaxed and not unconverged.
    A record stored before this rule with relaxed True beside converged False reads as unconverged."""
    return bool(properties.get(RELAXED)) and properties.get(CONVERGED) is not False


@dataclass
class StructureRecord:
    """One stored structure with everything known about it. The structure is parsed from the stored CIF on first
    use (about 1.5 ms a record): searches return records whose metadata is all most callers read."""

    id: str
    metadata: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    _structure: Structure | None = field(default=None, repr=False, compare=False)

    @property
    def structure(self) -> Structure:
        if self._structure is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._structure = Structure.from_str(self.cif, fmt="cif")
        return self._structure

    @property
    def cif(self) -> str:
        return str(self.metadata[CIF_KEY])

    def summary(self) -> dict[str, Any]:
        """Metadata without the bulky CIF, with provenance and properties decoded."""
        meta = {k: v for k, v in self.metadata.items()
                if k not in (CIF_KEY, WRITE_ID_KEY, INDEX_V_KEY)
                and not k.startswith((ELEMENT_FLAG_PREFIX, HAS_ELEMENT_PREFIX))}
        meta.pop(PROVENANCE_JSON_KEY, None)
        meta.pop(PROPERTIES_JSON_KEY, None)
        return {"id": self.id, **meta, "provenance": self.provenance, "properties": self.properties}


@dataclass
class StoreResult:
    """Outcome of a store call: the id and whether an equivalent structure was already there."""

    id: str
    deduplicated: bool


class StoreAuthError(PermissionError):
    """The chromadb server refused this client's credentials (HTTP 401/403): not retried, said plainly."""


def content_id(structure: Structure) -> str:
    """Content-addressed id (a hash of the structure's canonical content, `content_key`): storing the same
    structure twice, from any process, in any site order, or retrying a write lands on one record."""
    return "s-" + hashlib.sha256(content_key(structure).encode()).hexdigest()[:16]


def legacy_content_id(cif: str) -> str:
    """The id records got before `content_id` (a hash of their CIF text): a re-store still finds them by it."""
    return "s-" + hashlib.sha256(cif.encode()).hexdigest()[:16]


def _what_it_is(meta: dict[str, Any]) -> list[str]:
    """The opening parts of a record's text: chemistry, symmetry and size."""
    return [
        f"{meta[REDUCED_FORMULA_KEY]} crystal structure",
        f"space group {meta[SPACEGROUP_SYMBOL_KEY]} (No. {meta[SPACEGROUP_NUMBER_KEY]}), {meta[CRYSTAL_SYSTEM_KEY]}",
        f"elements {' '.join(meta[ELEMENTS_KEY].strip('|').split('|'))}",
        f"{meta[N_SITES_KEY]} atoms per cell",
    ]


def _where_from(meta: dict[str, Any], description: str | None) -> list[str]:
    """The closing parts of a record's text: tags, the tool that made it and the caller's note."""
    parts = [f"tags: {meta[TAGS_KEY]}"] if meta.get(TAGS_KEY) else []
    if meta.get(TOOL_KEY):
        parts.append(f"made by {meta[TOOL_KEY]}")
    return parts + ([description] if description else [])


def describe(structure: Structure, meta: dict[str, Any], description: str | None) -> str:
    """The record's document, as shown to users: chemistry, symmetry, size, density, energy, tags and note."""
    head = _what_it_is(meta)
    head[-1] += f", density {meta[DENSITY_KEY]:.2f} g/cm3"
    if ENERGY_PER_ATOM_KEY in meta:
        head.append(f"energy {meta[ENERGY_PER_ATOM_KEY]:.3f} eV/atom")
    return "; ".join(head + _where_from(meta, description))


def embedding_text(meta: dict[str, Any], description: str | None) -> str:
    """The text that text search embeds: the document without its continuous numbers (density, energy), which a
    sentence encoder cannot compare and which composition search and filters rank exactly. Records alike in kind
    share this text, so the encoder runs once for them (memory.embedding caches by text)."""
    return "; ".join(_what_it_is(meta) + _where_from(meta, description))


def symmetry_of(structure: Structure) -> tuple[str, int, str]:
    """Space-group symbol, number and crystal system (spglib through pymatgen; P1 when spglib fails)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sga = SpacegroupAnalyzer(structure, symprec=0.1)
            return sga.get_space_group_symbol(), int(sga.get_space_group_number()), sga.get_crystal_system()
    except Exception:  # spglib gives up on some distorted cells: P1 is the honest answer
        return "P1", 1, "triclinic"


def _clean(meta: dict[str, Any]) -> dict[str, Any]:
    """chromadb metadata takes str/int/float/bool only: drop None, JSON-encode the rest."""
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if value is None:
            continue
        out[key] = value if isinstance(value, str | int | float | bool) else json.dumps(value, default=str)
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _same_value(a: Any, b: Any) -> bool:
    """Equal, numbers up to float round-off (a value re-stored through JSON or CIF rounding is the same value)."""
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool | str):
        return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(a)), abs(float(b)))
    return json.dumps(a, default=str, sort_keys=True) == json.dumps(b, default=str, sort_keys=True)


def _indexed_properties(properties: dict[str, Any]) -> dict[str, float]:
    """Properties also kept as top-level metadata (filterable): formation energy and energy above hull, under
    either spelling the tools use (`e_above_hull` or `e_above_hull_eV`)."""
    out = {}
    for key in (FORMATION_ENERGY_PER_ATOM_KEY, E_ABOVE_HULL_KEY):
        for spelling in (key, f"{key}{EV_SUFFIX}"):
            value = properties.get(spelling)
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[key] = float(value)
    return out


HULL_SCHEMA = 1  # records written with hull metadata carry hull_v = 1; older ones are read the slow way
# Records written with search-index metadata carry index_v = INDEX_SCHEMA: `has_<El>: 1` per element (an int,
# which chromadb's SQLite indexes, where `el_<El>: True` booleans are a scan of every record: 50 ms at 10k) and an
# entry in the index collection (since 2, whose metadata holds the hull fields). Older records are given both once,
# on a store's first search with a filter or hull query.
INDEX_SCHEMA = 2


def _elements_of(meta: dict[str, Any]) -> list[str]:
    """The element symbols a record's metadata lists (ELEMENTS_KEY, "|O|Sr|Ti|")."""
    return [e for e in str(meta.get(ELEMENTS_KEY, "")).strip("|").split("|") if e]


def _index_fields(elements: list[str]) -> dict[str, Any]:
    """Search-index metadata of a record with these elements (see INDEX_SCHEMA)."""
    return {INDEX_V_KEY: INDEX_SCHEMA, CHEMSYS_KEY: "-".join(sorted(elements)),
            **{has_element_key(el): 1 for el in elements}}


def _index_entry(record_id: str, meta: dict[str, Any]) -> tuple[list[float], dict[str, Any]]:
    """A record's entry in the index collection, from its metadata: the vector (energy per atom, or NO_ENERGY; then
    a number from the id so that no two vectors coincide) and one packed metadata key (formulas, chemsys, hull
    fields) that composition search and hull_rows read through the in-memory IndexTable."""
    elements = _elements_of(meta)
    value = meta.get(ENERGY_PER_ATOM_KEY)
    energy = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else NO_ENERGY
    spread = int(hashlib.sha256(record_id.encode()).hexdigest()[:8], 16) / 2**32
    hull = {k: v for k, v in meta.items() if k.startswith(HULL_PREFIX)}
    light = packed_row(str(meta.get(FORMULA_KEY, "")), str(meta.get(REDUCED_FORMULA_KEY, "")),
                       "-".join(sorted(elements)), hull)
    return [energy, spread], light


def _fast_where(where: Any) -> Any:
    """A where clause with `{"el_X": True}` leaves rewritten to the indexed `{"has_X": 1}` (same matches once the
    store is indexed)."""
    if isinstance(where, dict):
        if len(where) == 1:
            (key, value), = where.items()
            if key.startswith(ELEMENT_FLAG_PREFIX) and value is True:
                return {has_element_key(key[len(ELEMENT_FLAG_PREFIX):]): 1}
        return {k: _fast_where(v) for k, v in where.items()}
    if isinstance(where, list):
        return [_fast_where(w) for w in where]
    return where


def _hull_fields(properties: dict[str, Any]) -> dict[str, Any]:
    """Hull metadata of a record (filterable without parsing its CIF): the potential and total energy it was
    scored with, whether it is a relaxation and whether that relaxation converged. Empty without both numbers."""
    potential, energy = properties.get(POTENTIAL_KEY), properties.get(ENERGY_EV_KEY)
    if not isinstance(potential, str) or not isinstance(energy, int | float) or isinstance(energy, bool):
        return {}
    return {
        HULL_POTENTIAL_KEY: potential,
        HULL_ENERGY_KEY: float(energy),
        HULL_RELAXATION_KEY: is_relaxation(properties),
        HULL_CONVERGED_KEY: is_converged_relaxation(properties),
    }


@dataclass
class _Pending:
    """A structure on its way into memory: its content id, fingerprint and (once prepared) metadata and document.
    A relaxation labelled `converged: False` is never stored as relaxed, whatever the caller passed."""

    structure: Structure
    provenance: dict[str, Any]
    energy: float | None
    properties: dict[str, Any]
    tags: list[str]
    description: str | None
    dedup: bool
    cif: str
    id: str
    legacy_id: str
    formula: str
    fingerprint: list[float]
    meta: dict[str, Any] = field(default_factory=dict)
    document: str = ""
    reduced: Structure | None = None  # as the equivalence check compares it, once it has been compared
    symmetry: tuple[str, int, str] | None = None  # space-group symbol, number, crystal system, once computed
    density: float | None = None  # g/cm3, once computed (pymatgen's unit handling makes it ~0.7 ms)

    @property
    def stamp(self) -> dict[str, Any]:
        """Who stored it and when (for the provenance of a record it is merged into)."""
        return {k: self.provenance[k] for k in (TOOL_KEY, TIME_KEY) if k in self.provenance}

    @property
    def carries_numbers(self) -> bool:
        return self.energy is not None or bool(self.properties)

    @classmethod
    def of(
        cls,
        structure: Structure,
        provenance: dict[str, Any] | None = None,
        energy: float | None = None,
        properties: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        description: str | None = None,
        dedup: bool = True,
    ) -> _Pending:
        properties, tags = dict(properties or {}), list(tags or [])
        if properties.get(CONVERGED) is False:
            properties[RELAXED] = False
            tags = list(dict.fromkeys([t for t in tags if t != RELAXED] + relaxation_tags(False)))
        cif = str(CifWriter(structure))
        return cls(structure, dict(provenance or {}), energy, properties, tags, description, dedup, cif,
                   content_id(structure), legacy_content_id(cif), structure.composition.reduced_formula,
                   structure_fingerprint(structure))


def _prepare_chunk(chunk: list[dict[str, Any]], dedup: bool) -> list[_Pending]:
    """The per-structure work of a batch store that needs no database: content ids, CIF, fingerprint, symmetry
    and (when de-duplicating) the matcher's reduced cell. Pure, so add_many runs it in worker processes."""
    out = []
    for kwargs in chunk:
        item = _Pending.of(**{"dedup": dedup, **kwargs})
        item.symmetry, item.density = symmetry_of(item.structure), float(item.structure.density)
        if item.dedup:
            item.reduced = reduced_for_matching(item.structure)
        out.append(item)
    return out


def _prepared_chunks(chunks: list[list[dict[str, Any]]], dedup: bool, workers: int) -> Iterator[list[_Pending]]:
    """The chunks prepared in order: here, or in `workers` worker processes (joblib's loky executor: fresh
    interpreters that do not re-run the caller's script, reused between calls) that work at most LOOKAHEAD chunks
    per worker ahead of the database writes, so the main process embeds and writes while they compute and the
    prepared chunks waiting in memory stay few."""
    if workers <= 0:  # lazily, here: symmetry and reduced cell only for what turns out new (_metadata, _reduced)
        yield from ([_Pending.of(**{"dedup": dedup, **kwargs}) for kwargs in chunk] for chunk in chunks)
        return
    executor = get_reusable_executor(max_workers=workers, timeout=60)
    todo = iter(chunks)
    ahead = deque(executor.submit(_prepare_chunk, c, dedup) for c in itertools.islice(todo, LOOKAHEAD * workers))
    while ahead:
        done = ahead.popleft().result()
        ahead.extend(executor.submit(_prepare_chunk, c, dedup) for c in itertools.islice(todo, 1))
        yield done


class StructureStore:
    """chromadb-backed structure memory; on disk under `path`, or on a chromadb server at `url` (with a token
    when the server wants one: sent as `Authorization: Bearer <token>` or in `X-Chroma-Token`, per `auth_header`).

    Several processes may share one server: a record's id is its content's (`content_id`), new records are
    written insert-if-absent, and a process that loses the race to write one merges its store into the winner's
    record (tags, description, properties), so they end with one record. Two stores merging different additions
    into one record at the same instant can still lose one of them (chromadb has no compare-and-set). An on-disk
    store is for one process: chromadb's persistent client does not coordinate several."""

    def __init__(
        self,
        path: Path | str | None = None,
        url: str | None = None,
        auth_token: str | None = None,
        auth_header: str = "Authorization",
    ) -> None:
        if not url and path is None:
            raise ValueError("StructureStore needs a path or a url")
        if auth_header not in AUTH_HEADERS:
            raise ValueError(f"auth_header must be one of {', '.join(AUTH_HEADERS)}, not {auth_header!r}")
        self.url, self.path = url, path
        self._auth_token, self._auth_header = auth_token or None, auth_header
        self.location = url or str(path)
        self._lock = threading.RLock()
        self._hull_backfilled = False
        self._indexed = False
        # Strict and unscaled: the same structure at another volume (e.g. before and after relaxation) is a
        # different record, so a relaxed geometry is never folded into its unrelaxed parent.
        self._equivalence = Equivalence()
        self._connect()

    def _connect(self) -> None:
        """Open the client and both collections (again, after a chromadb server restart)."""
        settings = ChromaSettings(anonymized_telemetry=False)
        if self.url:
            if self._auth_token:
                settings = ChromaSettings(
                    anonymized_telemetry=False,
                    chroma_client_auth_provider=TOKEN_AUTH_PROVIDER,
                    chroma_client_auth_credentials=self._auth_token,
                    chroma_auth_token_transport_header=self._auth_header,
                )
            host, port, ssl = self._server_address()
            try:
                self.client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
            except Exception as exc:
                self._raise_if_refused(exc)
                raise
        else:
            Path(self.path).mkdir(parents=True, exist_ok=True)
            self.client = chromadb.PersistentClient(path=str(self.path), settings=settings)
        # No embedding function: we always pass our own vectors, so chromadb's downloading default never runs.
        self.texts = self.client.get_or_create_collection(
            TEXT_COLLECTION, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )
        self.fingerprints = self.client.get_or_create_collection(
            FINGERPRINT_COLLECTION, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )
        self.index = self.client.get_or_create_collection(INDEX_COLLECTION, embedding_function=None)
        self.stamp = self.client.get_or_create_collection(STAMP_COLLECTION, embedding_function=None)
        self._index_table, self._table_token = None, None

    def _server_address(self) -> tuple[str, int, bool]:
        """Host, port and TLS of the chromadb server at `url` (port 8000, chromadb's, when the URL has none)."""
        parsed = urlparse(str(self.url))
        ssl = parsed.scheme == "https"
        return parsed.hostname or "127.0.0.1", parsed.port or (443 if ssl else 8000), ssl

    def _raise_if_refused(self, exc: BaseException) -> None:
        """StoreAuthError (from exc) when the server answers this client's credentials with 401 or 403. chromadb
        reports a refused token as "could not connect to tenant", so one authenticated request asks plainly."""
        if not self.url:
            return
        headers = {}
        if self._auth_token:
            value = f"Bearer {self._auth_token}" if self._auth_header == "Authorization" else self._auth_token
            headers[self._auth_header] = value
        host, port, ssl = self._server_address()
        try:
            identity = f"{'https' if ssl else 'http'}://{host}:{port}/api/v2/auth/identity"
            status = httpx.get(identity, headers=headers, timeout=5).status_code
        except Exception:
            return  # unreachable: not an auth problem, the caller's error stands
        if status in (401, 403):
            how = (f"the token sent in {self._auth_header}" if self._auth_token else "no token (none is configured)")
            raise StoreAuthError(
                f"the chromadb server at {self.url} refused {how} with HTTP {status}: set MATSEARCH_CHROMA_TOKEN to a "
                "token it accepts (and MATSEARCH_CHROMA_AUTH_HEADER=X-Chroma-Token if it reads that header)"
            ) from exc

    def _retrying(self, operation: Callable[[], T]) -> T:
        """Run an operation; against a chromadb server, reconnect and retry on failure (writes are idempotent).
        Refused credentials are not retried: StoreAuthError says so at once."""
        if not self.url:
            return operation()
        delay = 0.5
        for attempt in range(HTTP_RETRIES):
            try:
                return operation()
            except (ValueError, KeyError, TypeError, StoreAuthError):
                raise  # caller errors, not connection trouble
            except Exception as exc:
                self._raise_if_refused(exc)
                if attempt == HTTP_RETRIES - 1:
                    raise
                time.sleep(delay)
                delay *= 2
                with contextlib.suppress(Exception):  # the server may still be down: the next try reconnects
                    self._connect()
        raise AssertionError("unreachable")

    def count(self) -> int:
        return self._retrying(lambda: self.texts.count())

    def list_page(self, offset: int = 0, limit: int = 100) -> tuple[list[dict[str, Any]], int | None]:
        """One page of the stored structures, in storage order (stable: records are never deleted and a new one
        comes after the others), as light summaries (id, formula, reduced_formula, space group, n_sites,
        energy_per_atom when known, tags); and the offset of the next page, None after the last."""
        if offset < 0 or limit < 1:
            raise ValueError("offset must be >= 0 and limit >= 1")
        got = self._retrying(lambda: self.texts.get(limit=limit + 1, offset=offset, include=["metadatas"]))
        keys = (FORMULA_KEY, REDUCED_FORMULA_KEY, SPACEGROUP_SYMBOL_KEY, SPACEGROUP_NUMBER_KEY, N_SITES_KEY,
                ENERGY_PER_ATOM_KEY, TAGS_KEY)
        rows = [{"id": i, **{k: m[k] for k in keys if m.get(k) is not None}}
                for i, m in zip(got["ids"][:limit], got["metadatas"][:limit], strict=True)]
        return rows, offset + limit if len(got["ids"]) > limit else None

    def add(self, structure: Structure, **kwargs: Any) -> StoreResult:
        """Store a structure (or return the id of an equivalent stored one) with its provenance; see _add."""
        return self._retrying(lambda: self._add(structure, **kwargs))

    def _add(self, structure: Structure, **kwargs: Any) -> StoreResult:
        """Store a structure (or return the id of an equivalent stored one) with its provenance. Keywords:
        provenance, energy, properties, tags, description, dedup (see _Pending.of).

        The rule: a number (energy, any property) only ever sits on the exact structure it was computed on.
        - Same content (same CIF, same content id): the stored record is reused; new properties are added, a value
          that differs from the stored one is not overwritten (the earlier stays, the new one is recorded under the
          record's provenance `conflicting_values`), and new tags, description and parent ids are merged in.
        - An approximate duplicate (StructureMatcher) is reused only when the incoming store carries no energy and
          no properties (e.g. a generated sample); it gains the new tags and description.
        - Energy or properties on a structure that merely matches a stored one: a NEW record, linked to the match by
          provenance (`parent_ids` and `equivalent_to`), so e.g. a relaxed cell never lends its energy to the
          unrelaxed cell it came from.
        - A relaxation labelled `converged: False` is never stored as relaxed: `relaxed` becomes False and the tag
          'relaxed' becomes 'unconverged', whatever the caller passed."""
        item = _Pending.of(structure, **kwargs)
        with self._lock:
            stored = self._stored_ids([item]).get(item.id)
            if stored is not None:
                self._merge(stored, item.provenance, item.properties, item.energy, item.tags, item.description)
                return StoreResult(stored, True)
            match = self._find_equivalent(item) if item.dedup else None
            if match is not None and not item.carries_numbers:
                self._merge(match, item.stamp, {}, None, item.tags, item.description)
                return StoreResult(match, True)
            lost = self._write([self._prepared(item, match)])
        return StoreResult(item.id, item.id in lost)

    def add_many(
        self, items: list[dict[str, Any]], dedup: bool = True, batch_size: int = 256, workers: int | None = None
    ) -> list[StoreResult]:
        """Store many structures at once, with the rules of `add` (each item is add's keyword arguments plus
        `structure`): ids already stored are found by one lookup per batch, approximate duplicates through the
        fingerprint index (and against the batch itself), and new records are embedded and written per batch.
        The database-free work of each structure (CIF, fingerprint, symmetry) runs in `workers` processes ahead of
        the writes (default: one per CPU core, up to 2, for PARALLEL_MIN items or more; 0 runs it here)."""
        if workers is None:
            workers = min(2, os.cpu_count() or 1) if len(items) >= PARALLEL_MIN else 0
        chunks = [items[start : start + batch_size] for start in range(0, len(items), batch_size)]
        results: list[StoreResult] = []
        for chunk in _prepared_chunks(chunks, dedup, workers):
            results += self._retrying(lambda chunk=chunk: self._add_batch(chunk))
        return results

    def _add_batch(self, chunk: list[_Pending]) -> list[StoreResult]:
        with self._lock:
            stored = self._stored_ids(chunk)  # content id -> id of the stored same-content record
            pending: dict[str, _Pending] = {}  # new records of this batch, written at its end
            results: list[StoreResult] = []
            position: dict[str, int] = {}  # where each pending record's result is

            def flush() -> None:
                for lost in self._write(list(pending.values())):  # another process wrote it first
                    results[position[lost]] = StoreResult(lost, True)
                stored.update({i: i for i in pending})
                pending.clear()

            for item in chunk:
                match = stored.get(item.id) or (item.id if item.id in pending else None)
                same_content = match is not None
                if match is None and item.dedup:
                    match = self._pending_equivalent(item, pending) or self._find_equivalent(item)
                if match is not None and (same_content or not item.carries_numbers):
                    if match in pending:  # merging needs it stored: write the batch so far
                        flush()
                    if same_content:
                        self._merge(match, item.provenance, item.properties, item.energy, item.tags, item.description)
                    else:
                        self._merge(match, item.stamp, {}, None, item.tags, item.description)
                    results.append(StoreResult(match, True))
                    continue
                pending[item.id] = self._prepared(item, match)
                position[item.id] = len(results)
                results.append(StoreResult(item.id, False))
            flush()
        return results

    def _stored_ids(self, items: list[_Pending]) -> dict[str, str]:
        """For each item whose content is stored: its content id -> the stored record's id (its content id, or the
        legacy id of a record stored before content ids). One lookup."""
        wanted = list(dict.fromkeys(i for p in items for i in (p.id, p.legacy_id)))
        found = set(self.texts.get(ids=wanted, include=[])["ids"])
        return {p.id: p.id if p.id in found else p.legacy_id for p in items if {p.id, p.legacy_id} & found}

    def _pending_equivalent(self, item: _Pending, pending: dict[str, _Pending]) -> str | None:
        """Id of a not-yet-written record of this batch equivalent to the item (nearest fingerprints first)."""
        same = [p for p in pending.values() if p.formula == item.formula]
        same.sort(key=lambda p: -sum(a * b for a, b in zip(p.fingerprint, item.fingerprint, strict=True)))
        for other in same[:DEDUP_CANDIDATES]:
            if self._equivalence.same(self._reduced(item), self._reduced(other)):
                return other.id
        return None

    def _reduced(self, item: _Pending) -> Structure:
        """The item's cell as the equivalence check compares it (reduced once)."""
        if item.reduced is None:
            item.reduced = self._equivalence.reduced(item.structure)
        return item.reduced

    def _prepared(self, item: _Pending, match: str | None) -> _Pending:
        """The item with its metadata and document; linked by provenance to an equivalent stored record."""
        if match is not None:
            parents = list(item.provenance.get(PARENT_IDS_KEY, []))
            item.provenance[PARENT_IDS_KEY] = parents if match in parents else [*parents, match]
            item.provenance[EQUIVALENT_TO_KEY] = match
        meta = self._metadata(item)
        if item.description:
            meta[DESCRIPTION_KEY] = item.description
        item.document = describe(item.structure, meta, item.description)
        item.meta = meta
        return item

    def _write(self, items: list[_Pending]) -> set[str]:
        """Embed and write new records, one call per collection: the fingerprint first (an upsert: the same content
        has the same fingerprint), then the record insert-if-absent (chromadb's `add` leaves an existing id as it
        is). Another process may have written one of these ids since this one looked: its record stays, and this
        store is merged into it as a repeated store would be. Returns the ids that were so merged."""
        if not items:
            return set()
        write_id = uuid.uuid4().hex  # tells this write's records from a concurrent writer's
        for p in items:
            p.meta[WRITE_ID_KEY] = write_id
        ids, documents = [p.id for p in items], [p.document for p in items]
        vectors = embed_texts([embedding_text(p.meta, p.description) for p in items])
        self.fingerprints.upsert(
            ids=ids,
            embeddings=[p.fingerprint for p in items],
            metadatas=[{REDUCED_FORMULA_KEY: p.meta[REDUCED_FORMULA_KEY], N_SITES_KEY: p.meta[N_SITES_KEY]}
                       for p in items],
        )
        self.texts.add(
            ids=ids, documents=documents, embeddings=vectors, metadatas=[_clean(p.meta) for p in items]
        )
        got = self.texts.get(ids=ids, include=["metadatas"])
        lost = {i for i, m in zip(got["ids"], got["metadatas"], strict=True) if m.get(WRITE_ID_KEY) != write_id}
        for p in items:
            if p.id in lost:
                self._merge(p.id, p.provenance, p.properties, p.energy, p.tags, p.description)
        # The index after the records (a write cut short between them is repaired by _ensure_index); a lost
        # record's entry from the winner's metadata as merged.
        for p in items:
            if p.reduced is not None and p.id not in lost:
                self._equivalence.keep(p.id, p.reduced)
        metas = dict(zip(got["ids"], got["metadatas"], strict=True))
        if lost:
            again = self.texts.get(ids=list(lost), include=["metadatas"])
            metas.update(zip(again["ids"], again["metadatas"], strict=True))
        self._set_index(list(metas), list(metas.values()))
        return lost

    @staticmethod
    def _metadata(item: _Pending) -> dict[str, Any]:
        """The record's metadata: what searches filter on, what the hull and index read, provenance and CIF."""
        structure, provenance, energy, properties, tags = (item.structure, item.provenance, item.energy,
                                                           item.properties, item.tags)
        symbol, number, system = item.symmetry or symmetry_of(structure)
        comp = structure.composition
        elements = sorted({el.symbol for el in comp.elements})
        meta: dict[str, Any] = {
            FORMULA_KEY: comp.formula.replace(" ", ""),
            REDUCED_FORMULA_KEY: comp.reduced_formula,
            ELEMENTS_KEY: "|" + "|".join(elements) + "|",
            N_ELEMENTS_KEY: len(elements),
            N_SITES_KEY: len(structure),
            SPACEGROUP_SYMBOL_KEY: symbol,
            SPACEGROUP_NUMBER_KEY: number,
            CRYSTAL_SYSTEM_KEY: system,
            DENSITY_KEY: item.density if item.density is not None else float(structure.density),
            VOLUME_PER_ATOM_KEY: float(structure.volume / len(structure)),
            TOOL_KEY: provenance.get(TOOL_KEY),
            PARENT_IDS_KEY: "|".join(provenance.get(PARENT_IDS_KEY, [])) or None,
            CREATED_AT_KEY: provenance.get(TIME_KEY) or _now(),
            PROVENANCE_JSON_KEY: json.dumps(provenance, default=str),
            PROPERTIES_JSON_KEY: json.dumps(properties, default=str),
            TAGS_KEY: ",".join(tags) or None,
            CIF_KEY: item.cif,
        }
        meta.update({element_flag_key(el): True for el in elements})
        if energy is not None:
            meta[ENERGY_KEY] = float(energy)
            meta[ENERGY_PER_ATOM_KEY] = float(energy) / len(structure)
        meta.update(_indexed_properties(properties))
        meta.update(hull_v=HULL_SCHEMA, **_hull_fields(properties), **_index_fields(elements))
        return meta

    def _find_equivalent(self, item: _Pending) -> str | None:
        """Id of a stored structure equivalent to the item (strict, unscaled StructureMatcher; nearest fingerprints
        of the same formula first), else None. Stored candidates' reduced cells are kept by id between calls."""
        same_formula = self.fingerprints.get(where={REDUCED_FORMULA_KEY: item.formula}, include=[], limit=1)
        if not same_formula["ids"]:
            return None
        hits = self.fingerprints.query(
            query_embeddings=[item.fingerprint],
            n_results=DEDUP_CANDIDATES,
            where={REDUCED_FORMULA_KEY: item.formula},
            include=[],
        )
        for candidate_id in hits["ids"][0]:
            reduced = self._equivalence.stored_reduced(candidate_id)
            if reduced is None:
                record = self.get(candidate_id)
                if record is None:
                    continue
                reduced = self._equivalence.reduced(record.structure)
                self._equivalence.keep(candidate_id, reduced)
            if self._equivalence.same(self._reduced(item), reduced):
                return candidate_id
        return None

    def _merge(
        self,
        record_id: str,
        provenance: dict[str, Any],
        properties: dict[str, Any],
        energy: float | None,
        tags: list[str],
        description: str | None,
    ) -> None:
        """Merge a repeated store into the stored record: properties and energy it lacks (never replacing a stored
        value by a different one: the new value goes to provenance `conflicting_values`), new parent ids, tags and
        description. Only called for the same content, or with no numbers for an approximate duplicate."""
        got = self.texts.get(ids=[record_id], include=["metadatas", "documents"])
        if not got["ids"]:
            return
        meta, document = dict(got["metadatas"][0]), got["documents"][0] or ""
        record = self._record(record_id, meta)
        merged_props, merged_prov = dict(record.properties), dict(record.provenance)
        conflicts: list[dict[str, Any]] = []
        for key, value in properties.items():
            if key not in merged_props:
                merged_props[key] = value
            elif not _same_value(merged_props[key], value):
                conflicts.append({"key": key, "value": value})
        changes: dict[str, Any] = {}
        if energy is not None:
            if ENERGY_KEY not in meta:
                changes[ENERGY_KEY] = float(energy)
                changes[ENERGY_PER_ATOM_KEY] = float(energy) / len(record.structure)
            elif not _same_value(float(meta[ENERGY_KEY]), float(energy)):
                conflicts.append({"key": ENERGY_KEY, "value": float(energy)})
        if conflicts:
            stamp = {TOOL_KEY: provenance.get(TOOL_KEY), TIME_KEY: provenance.get(TIME_KEY) or _now()}
            merged_prov[CONFLICTING_VALUES_KEY] = [
                *merged_prov.get(CONFLICTING_VALUES_KEY, []),
                *({**c, **stamp} for c in conflicts),
            ]
        old_parents = list(merged_prov.get(PARENT_IDS_KEY, []))
        parents = old_parents + [p for p in provenance.get(PARENT_IDS_KEY, [])
                                 if p not in old_parents and p != record_id]
        if parents != old_parents:
            merged_prov[PARENT_IDS_KEY] = parents
            changes[PARENT_IDS_KEY] = "|".join(parents)
        if merged_props != record.properties:
            changes[PROPERTIES_JSON_KEY] = json.dumps(merged_props, default=str)
            changes.update(_indexed_properties(merged_props))
            changes.update(_hull_fields(merged_props))
        if merged_prov != record.provenance:
            changes[PROVENANCE_JSON_KEY] = json.dumps(merged_prov, default=str)
        old_tags = [t for t in str(meta.get(TAGS_KEY) or "").split(",") if t]
        all_tags = old_tags + [t for t in dict.fromkeys(tags) if t not in old_tags]
        if all_tags != old_tags:
            changes[TAGS_KEY] = ",".join(all_tags)
        old_description = meta.get(DESCRIPTION_KEY)
        if old_description is None:  # records stored before descriptions were kept: read it off the document
            base = describe(record.structure, meta, None)
            old_description = document[len(base) + 2 :] if document.startswith(base + "; ") else ""
        descriptions = [d for d in str(old_description).split("\n") if d]
        if description and description not in descriptions:
            descriptions.append(description)
            changes[DESCRIPTION_KEY] = "\n".join(descriptions)
        added = {"tags": all_tags[len(old_tags) :], "description": changes.get(DESCRIPTION_KEY) and description,
                 "properties": sorted(set(merged_props) - set(record.properties))}
        if any(added.values()):  # provenance keeps the store that brought something (a bare retry adds nothing)
            stamp = {TOOL_KEY: provenance.get(TOOL_KEY), TIME_KEY: provenance.get(TIME_KEY) or _now()}
            merged_prov[MERGED_STORES_KEY] = [*merged_prov.get(MERGED_STORES_KEY, []),
                                            {**stamp, **{k: v for k, v in added.items() if v}}]
            changes[PROVENANCE_JSON_KEY] = json.dumps(merged_prov, default=str)
        if not changes:
            return
        new_meta = {**meta, **changes}
        new_description = "; ".join(descriptions) or None
        new_document = describe(record.structure, new_meta, new_description)
        if new_document != document:
            vector = embed_texts([embedding_text(new_meta, new_description)])
            self.texts.update(ids=[record_id], metadatas=[changes], documents=[new_document], embeddings=vector)
        else:
            self.texts.update(ids=[record_id], metadatas=[changes])
        if ENERGY_PER_ATOM_KEY in changes or any(k.startswith(HULL_PREFIX) for k in changes):
            self._set_index([record_id], [new_meta])

    def update(self, record_id: str, properties: dict[str, Any] | None = None, energy: float | None = None) -> None:
        """Set or overwrite properties/energy of a stored structure: only for numbers computed on that very
        structure (e.g. its energy above a newer hull)."""
        record = self.get(record_id)
        if record is None:
            raise KeyError(record_id)
        changes: dict[str, Any] = {}
        if properties:
            merged = {**record.properties, **properties}
            changes[PROPERTIES_JSON_KEY] = json.dumps(merged, default=str)
            changes.update(_indexed_properties(properties))
            changes.update(_hull_fields(merged))
        if energy is not None:
            changes[ENERGY_KEY] = float(energy)
            changes[ENERGY_PER_ATOM_KEY] = float(energy) / len(record.structure)
        if changes:
            self.texts.update(ids=[record_id], metadatas=[changes])
        if ENERGY_PER_ATOM_KEY in changes or any(k.startswith(HULL_PREFIX) for k in changes):
            self._set_index([record_id], [{**record.metadata, **changes}])

    def _set_index(self, ids: list[str], metas: list[dict[str, Any]]) -> None:
        """Write the index-collection entries of these records from their metadata (see _index_entry), and apply
        them to the in-memory table when it is current (else it is dropped and reloaded by the next query)."""
        for start in range(0, len(ids), GET_CHUNK):
            chunk = ids[start : start + GET_CHUNK]
            entries = [_index_entry(i, m) for i, m in zip(chunk, metas[start : start + GET_CHUNK], strict=True)]
            vectors, lights = [e[0] for e in entries], [e[1] for e in entries]
            self.index.upsert(ids=chunk, embeddings=vectors, metadatas=lights)
            current = self._index_table is not None and self._stamp_token() == self._table_token
            token = uuid.uuid4().hex
            self.stamp.upsert(ids=[STAMP_ID], embeddings=[[0.0]], metadatas=[{"token": token}])
            if current:
                self._index_table.upsert(chunk, vectors, lights)
                self._table_token = token
            else:
                self._index_table = None

    def _stamp_token(self) -> str | None:
        """The token of the last index write (by any process sharing this store), None before the first."""
        got = self.stamp.get(ids=[STAMP_ID], include=["metadatas"])
        return str(got["metadatas"][0]["token"]) if got["ids"] else None

    def _table(self) -> IndexTable:
        """The in-memory index table, loaded from the index collection when this store has none or another
        process has written since it was loaded. (A write racing this store's own write can go unseen until the
        next write: chromadb has no compare-and-set for the token.)"""
        self._ensure_index()
        token = self._stamp_token()
        if self._index_table is None or token != self._table_token:
            table = IndexTable(capacity=max(1024, self.index.count()))
            offset = 0
            while True:
                got = self.index.get(include=["embeddings", "metadatas"], limit=TABLE_PAGE, offset=offset)
                if not got["ids"]:
                    break
                table.upsert(list(got["ids"]), got["embeddings"], list(got["metadatas"]))
                offset += len(got["ids"])
            self._index_table, self._table_token = table, token
        return self._index_table

    def _ensure_index(self) -> None:
        """Give records written before search-index metadata (no index_v = INDEX_SCHEMA) their `has_<El>` flags,
        chemsys and index entry, from their metadata (no CIF parsed), and index entries to records whose write
        stopped short of theirs. Once per store object; idempotent."""
        if self._indexed:
            return
        got = self.texts.get(where={INDEX_V_KEY: {"$ne": INDEX_SCHEMA}}, include=["metadatas"])
        ids, metas = list(got["ids"]), list(got["metadatas"])
        flags = [_index_fields(_elements_of(m)) for m in metas]
        for start in range(0, len(ids), 1000):
            self.texts.update(ids=ids[start : start + 1000], metadatas=flags[start : start + 1000])
        self._set_index(ids, metas)
        if self.index.count() < self.texts.count():
            have = set(self.index.get(include=[])["ids"])
            missing = [i for i in self.texts.get(include=[])["ids"] if i not in have]
            for start in range(0, len(missing), GET_CHUNK):
                got = self.texts.get(ids=missing[start : start + GET_CHUNK], include=["metadatas"])
                self._set_index(list(got["ids"]), list(got["metadatas"]))
        self._indexed = True

    def _records(self, ids: list[str]) -> list[StructureRecord]:
        """The records of these ids, in this order (one fetch; ids not stored are left out)."""
        if not ids:
            return []
        by_id: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), GET_CHUNK):
            chunk = list(ids[start : start + GET_CHUNK])
            got = self._retrying(lambda chunk=chunk: self.texts.get(ids=chunk, include=["metadatas"]))
            by_id.update(zip(got["ids"], got["metadatas"], strict=True))
        return [self._record(i, by_id[i]) for i in ids if i in by_id]

    def get(self, record_id: str) -> StructureRecord | None:
        """The stored record for an id, or None."""
        got = self._retrying(lambda: self.texts.get(ids=[record_id], include=["metadatas"]))
        if not got["ids"]:
            return None
        return self._record(got["ids"][0], got["metadatas"][0])

    @staticmethod
    def _record(record_id: str, meta: dict[str, Any]) -> StructureRecord:
        return StructureRecord(
            id=record_id,
            metadata=dict(meta),
            provenance=json.loads(str(meta.get(PROVENANCE_JSON_KEY, "{}"))),
            properties=json.loads(str(meta.get(PROPERTIES_JSON_KEY, "{}"))),
        )

    def hull_rows(self, elements: list[str], potential: str) -> list[HullRow]:
        """Every stored relaxation inside this chemical system scored with this potential, converged or not, from
        the in-memory index table (no query per call once it is loaded, no CIF parsed).
        Records stored before hull metadata (no hull_v) are given it once, from their metadata, on this store's
        first call."""
        if not self._hull_backfilled:
            self._retrying(self._backfill_hull_metadata)
            self._hull_backfilled = True
        table = self._retrying(self._table)
        return table.hull_rows(elements, potential)

    def _backfill_hull_metadata(self) -> int:
        """Give records written before hull metadata their chemsys, hull_v and hull fields (from their elements and
        properties: no CIF parsed). Idempotent; returns how many records it updated."""
        got = self.texts.get(where={HULL_V_KEY: {"$ne": HULL_SCHEMA}}, include=["metadatas"])
        ids, metas = [], []
        for record_id, meta in zip(got["ids"], got["metadatas"], strict=True):
            elements = _elements_of(meta)
            ids.append(record_id)
            metas.append({CHEMSYS_KEY: "-".join(sorted(elements)), HULL_V_KEY: HULL_SCHEMA,
                          **_hull_fields(json.loads(str(meta.get(PROPERTIES_JSON_KEY, "{}"))))})
        for start in range(0, len(ids), 1000):
            self.texts.update(ids=ids[start : start + 1000], metadatas=metas[start : start + 1000])
        old = dict(zip(got["ids"], got["metadatas"], strict=True))
        self._set_index(ids, [{**old[i], **m} for i, m in zip(ids, metas, strict=True)])
        return len(ids)

    def search_text(
        self, query: str, n: int = 5, where: dict[str, Any] | None = None
    ) -> list[tuple[StructureRecord, float]]:
        """Structures whose description is closest in meaning to the query (cosine similarity in [−1, 1])."""
        total = self.count()
        if total == 0:
            return []
        if where is not None:
            self._retrying(self._ensure_index)
            where = _fast_where(where)
        vector = embed_texts([query])
        res = self._retrying(
            lambda: self.texts.query(
                query_embeddings=vector, n_results=min(n, total), where=where, include=["metadatas", "distances"]
            )
        )
        return [
            (self._record(i, m), 1.0 - float(d))
            for i, m, d in zip(res["ids"][0], res["metadatas"][0], res["distances"][0], strict=True)
        ]

    def search_similar(self, structure: Structure, n: int = 5) -> list[tuple[StructureRecord, float]]:
        """Structures with the most similar fingerprint (cosine similarity; 1.0 is identical)."""
        total = self._retrying(lambda: self.fingerprints.count())
        if total == 0:
            return []
        vector = [structure_fingerprint(structure)]
        res = self._retrying(
            lambda: self.fingerprints.query(query_embeddings=vector, n_results=min(n, total), include=["distances"])
        )
        score = {i: 1.0 - float(d) for i, d in zip(res["ids"][0], res["distances"][0], strict=True)}
        return [(record, score[record.id]) for record in self._records(res["ids"][0])]

    def search_composition(
        self,
        formula: str | None = None,
        elements: list[str] | None = None,
        only_elements: bool = False,
        n: int = 20,
        within: list[str] | None = None,
    ) -> list[StructureRecord]:
        """Structures with this reduced formula, or containing all these elements (exactly them if only_elements),
        or (with `within`) made only of elements from that set; lowest energy per atom first."""
        if not formula and not elements and not within:
            raise ValueError("give a formula, elements or within")
        # Every match ranked, fetching only what ranking needs: the in-memory table gives the positions of all
        # matches with their float32 energies; only the records that can be among the n lowest are fetched and
        # sorted on their exact energies. (A truncated fetch sorted afterwards returned an arbitrary n of the
        # matches; a chromadb filter costs time in proportion to the matches: 190 ms for O at 100k records.)
        table = self._retrying(self._table)
        positions = table.matching(
            reduced_formula=Composition(formula).reduced_formula if formula else None,
            elements=list(dict.fromkeys(elements or [])), only_elements=only_elements, within=within,
        )
        ids = table.lowest(positions, n)
        records = self._records(ids)
        records.sort(key=lambda r: (float(r.metadata.get(ENERGY_PER_ATOM_KEY, float("inf"))), r.id))
        return records[:n]
