"""The structure memory: chromadb collections on disk (or a chromadb HTTP server) holding every structure with
its formula, symmetry, energies, properties, provenance and CIF; searchable by text, formula and similarity."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import chromadb
from chromadb.config import Settings as ChromaSettings
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Composition, Structure
from pymatgen.io.cif import CifWriter
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from memory.embedding import embed_texts
from memory.fingerprint import structure_fingerprint

TEXT_COLLECTION = "structures"
FINGERPRINT_COLLECTION = "structure_fingerprints"
DEDUP_CANDIDATES = 8
HTTP_RETRIES = 6  # ~16 s of reconnect attempts against a restarting chromadb server
T = TypeVar("T")


@dataclass
class StructureRecord:
    """One stored structure with everything known about it."""

    id: str
    structure: Structure
    metadata: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def cif(self) -> str:
        return str(self.metadata["cif"])

    def summary(self) -> dict[str, Any]:
        """Metadata without the bulky CIF, with provenance and properties decoded."""
        meta = {k: v for k, v in self.metadata.items() if k != "cif" and not k.startswith("el_")}
        meta.pop("provenance_json", None)
        meta.pop("properties_json", None)
        return {"id": self.id, **meta, "provenance": self.provenance, "properties": self.properties}


@dataclass
class StoreResult:
    """Outcome of a store call: the id and whether an equivalent structure was already there."""

    id: str
    deduplicated: bool


def content_id(cif: str) -> str:
    """Content-addressed id, so storing the same structure twice (or retrying a write) never duplicates it."""
    return "s-" + hashlib.sha256(cif.encode()).hexdigest()[:16]


def describe(structure: Structure, meta: dict[str, Any], description: str | None) -> str:
    """The text that text search embeds: chemistry, symmetry, size, energies, tags and the caller's note."""
    parts = [
        f"{meta['reduced_formula']} crystal structure",
        f"space group {meta['spacegroup_symbol']} (No. {meta['spacegroup_number']}), {meta['crystal_system']}",
        f"elements {' '.join(meta['elements'].strip('|').split('|'))}",
        f"{meta['n_sites']} atoms per cell, density {meta['density']:.2f} g/cm3",
    ]
    if "energy_per_atom" in meta:
        parts.append(f"energy {meta['energy_per_atom']:.3f} eV/atom")
    if meta.get("tags"):
        parts.append(f"tags: {meta['tags']}")
    if meta.get("tool"):
        parts.append(f"made by {meta['tool']}")
    if description:
        parts.append(description)
    return "; ".join(parts)


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


class StructureStore:
    """chromadb-backed structure memory; on disk under `path`, or on a chromadb server at `url`."""

    def __init__(self, path: Path | str | None = None, url: str | None = None) -> None:
        if not url and path is None:
            raise ValueError("StructureStore needs a path or a url")
        self.url, self.path = url, path
        self.location = url or str(path)
        self._lock = threading.RLock()
        # Strict and unscaled: the same structure at another volume (e.g. before and after relaxation) is a
        # different record, so a relaxed geometry is never folded into its unrelaxed parent.
        self._matcher = StructureMatcher(ltol=0.05, stol=0.1, angle_tol=2, primitive_cell=True, scale=False)
        self._connect()

    def _connect(self) -> None:
        """Open the client and both collections (again, after a chromadb server restart)."""
        settings = ChromaSettings(anonymized_telemetry=False)
        if self.url:
            parsed = urlparse(self.url)
            self.client = chromadb.HttpClient(
                host=parsed.hostname or "127.0.0.1",
                port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                ssl=parsed.scheme == "https",
                settings=settings,
            )
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

    def _retrying(self, operation: Callable[[], T]) -> T:
        """Run an operation; against a chromadb server, reconnect and retry on failure (writes are idempotent)."""
        if not self.url:
            return operation()
        delay = 0.5
        for attempt in range(HTTP_RETRIES):
            try:
                return operation()
            except (ValueError, KeyError, TypeError):
                raise  # caller errors, not connection trouble
            except Exception:
                if attempt == HTTP_RETRIES - 1:
                    raise
                time.sleep(delay)
                delay *= 2
                with contextlib.suppress(Exception):  # the server may still be down: the next try reconnects
                    self._connect()
        raise AssertionError("unreachable")

    def count(self) -> int:
        return self._retrying(lambda: self.texts.count())

    def add(self, structure: Structure, **kwargs: Any) -> StoreResult:
        """Store a structure (or return the id of an equivalent stored one) with its provenance; see _add."""
        return self._retrying(lambda: self._add(structure, **kwargs))

    def _add(
        self,
        structure: Structure,
        *,
        provenance: dict[str, Any] | None = None,
        energy: float | None = None,
        properties: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        description: str | None = None,
        dedup: bool = True,
    ) -> StoreResult:
        """Store a structure (or return the id of an equivalent stored one) with its provenance."""
        cif = str(CifWriter(structure))
        new_id = content_id(cif)
        fingerprint = structure_fingerprint(structure)
        meta = self._metadata(structure, cif, provenance or {}, energy, properties or {}, tags or [])
        with self._lock:
            existing = self._find_equivalent(structure, meta["reduced_formula"], fingerprint, new_id, dedup)
            if existing is not None:
                self._merge_properties(existing, properties or {}, energy)
                return StoreResult(existing, True)
            document = describe(structure, meta, description)
            clean = _clean(meta)
            self.texts.upsert(ids=[new_id], documents=[document], embeddings=embed_texts([document]), metadatas=[clean])
            self.fingerprints.upsert(
                ids=[new_id],
                embeddings=[fingerprint],
                metadatas=[{"reduced_formula": meta["reduced_formula"], "n_sites": meta["n_sites"]}],
            )
        return StoreResult(new_id, False)

    def _metadata(
        self,
        structure: Structure,
        cif: str,
        provenance: dict[str, Any],
        energy: float | None,
        properties: dict[str, Any],
        tags: list[str],
    ) -> dict[str, Any]:
        symbol, number, system = symmetry_of(structure)
        comp = structure.composition
        elements = sorted({el.symbol for el in comp.elements})
        meta: dict[str, Any] = {
            "formula": comp.formula.replace(" ", ""),
            "reduced_formula": comp.reduced_formula,
            "elements": "|" + "|".join(elements) + "|",
            "n_elements": len(elements),
            "n_sites": len(structure),
            "spacegroup_symbol": symbol,
            "spacegroup_number": number,
            "crystal_system": system,
            "density": float(structure.density),
            "volume_per_atom": float(structure.volume / len(structure)),
            "tool": provenance.get("tool"),
            "parent_ids": "|".join(provenance.get("parent_ids", [])) or None,
            "created_at": provenance.get("time") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "provenance_json": json.dumps(provenance, default=str),
            "properties_json": json.dumps(properties, default=str),
            "tags": ",".join(tags) or None,
            "cif": cif,
        }
        meta.update({f"el_{el}": True for el in elements})
        if energy is not None:
            meta["energy"] = float(energy)
            meta["energy_per_atom"] = float(energy) / len(structure)
        for key in ("formation_energy_per_atom", "e_above_hull"):
            if isinstance(properties.get(key), int | float):
                meta[key] = float(properties[key])
        return meta

    def _find_equivalent(
        self, structure: Structure, reduced_formula: str, fingerprint: list[float], new_id: str, dedup: bool
    ) -> str | None:
        """Id of a stored structure equal to this one (same content, or StructureMatcher match), else None."""
        if self.texts.get(ids=[new_id], include=[])["ids"]:
            return new_id
        if not dedup:
            return None
        same_formula = self.fingerprints.get(where={"reduced_formula": reduced_formula}, include=[], limit=1)
        if not same_formula["ids"]:
            return None
        hits = self.fingerprints.query(
            query_embeddings=[fingerprint],
            n_results=DEDUP_CANDIDATES,
            where={"reduced_formula": reduced_formula},
            include=[],
        )
        for candidate_id in hits["ids"][0]:
            record = self.get(candidate_id)
            if record is not None and self._matcher.fit(structure, record.structure):
                return candidate_id
        return None

    def _merge_properties(self, record_id: str, properties: dict[str, Any], energy: float | None) -> None:
        """Add properties the stored duplicate lacks, so a repeated store loses no new information."""
        record = self.get(record_id)
        if record is None:
            return
        merged = {**properties, **record.properties}
        changes: dict[str, Any] = {}
        if merged != record.properties:
            changes["properties_json"] = json.dumps(merged, default=str)
        if energy is not None and "energy" not in record.metadata:
            changes["energy"] = float(energy)
            changes["energy_per_atom"] = float(energy) / len(record.structure)
        if changes:
            self.texts.update(ids=[record_id], metadatas=[changes])

    def update(self, record_id: str, properties: dict[str, Any] | None = None, energy: float | None = None) -> None:
        """Set or overwrite properties/energy of a stored structure."""
        record = self.get(record_id)
        if record is None:
            raise KeyError(record_id)
        changes: dict[str, Any] = {}
        if properties:
            changes["properties_json"] = json.dumps({**record.properties, **properties}, default=str)
            for key in ("formation_energy_per_atom", "e_above_hull"):
                if isinstance(properties.get(key), int | float):
                    changes[key] = float(properties[key])
        if energy is not None:
            changes["energy"] = float(energy)
            changes["energy_per_atom"] = float(energy) / len(record.structure)
        if changes:
            self.texts.update(ids=[record_id], metadatas=[changes])

    def get(self, record_id: str) -> StructureRecord | None:
        """The stored record for an id, or None."""
        got = self._retrying(lambda: self.texts.get(ids=[record_id], include=["metadatas"]))
        if not got["ids"]:
            return None
        return self._record(got["ids"][0], got["metadatas"][0])

    @staticmethod
    def _record(record_id: str, meta: dict[str, Any]) -> StructureRecord:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_str(str(meta["cif"]), fmt="cif")
        return StructureRecord(
            id=record_id,
            structure=structure,
            metadata=dict(meta),
            provenance=json.loads(str(meta.get("provenance_json", "{}"))),
            properties=json.loads(str(meta.get("properties_json", "{}"))),
        )

    def search_text(
        self, query: str, n: int = 5, where: dict[str, Any] | None = None
    ) -> list[tuple[StructureRecord, float]]:
        """Structures whose description is closest in meaning to the query (cosine similarity in [−1, 1])."""
        if self.count() == 0:
            return []
        vector = embed_texts([query])
        res = self._retrying(
            lambda: self.texts.query(
                query_embeddings=vector, n_results=min(n, self.count()), where=where, include=["metadatas", "distances"]
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
        out = []
        for record_id, dist in zip(res["ids"][0], res["distances"][0], strict=True):
            record = self.get(record_id)
            if record is not None:
                out.append((record, 1.0 - float(dist)))
        return out

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
        clauses: list[dict[str, Any]] = []
        if formula:
            clauses.append({"reduced_formula": Composition(formula).reduced_formula})
        for el in elements or []:
            clauses.append({f"el_{el}": True})
        if only_elements and elements:
            clauses.append({"n_elements": len(set(elements))})
        if within:
            any_of = [{f"el_{el}": True} for el in within]
            clauses.append(any_of[0] if len(any_of) == 1 else {"$or": any_of})
        if not clauses:
            raise ValueError("give a formula, elements or within")
        where = clauses[0] if len(clauses) == 1 else {"$and": clauses}
        got = self._retrying(lambda: self.texts.get(where=where, include=["metadatas"], limit=None if within else n))
        records = [self._record(i, m) for i, m in zip(got["ids"], got["metadatas"], strict=True)]
        if within:
            allowed = set(within)
            records = [r for r in records if set(r.metadata["elements"].strip("|").split("|")) <= allowed]
        records.sort(key=lambda r: r.metadata.get("energy_per_atom", float("inf")))
        return records[:n]
