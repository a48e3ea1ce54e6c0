"""Data layer: taxonomies and label normalisation, image validation, dataset adapters, ingest, demo data.

Plain library: no Prefect import here (pipelines/ wraps these functions in tasks).
"""

from .adapters import ADAPTERS, AdapterResult, SampleRecord, list_samples
from .demo import DemoDataset, generate_demo
from .images import ImageCheck, ImageDecodeError, inspect_image, load_rgb
from .ingest import MANIFEST_SCHEMA, IngestResult, build_manifest, quarantine_summary
from .taxonomy import SYNONYMS, TAXONOMIES, VOCABULARY, get_taxonomy, label_ids, normalise_label

__all__ = [
    "ADAPTERS",
    "MANIFEST_SCHEMA",
    "SYNONYMS",
    "TAXONOMIES",
    "VOCABULARY",
    "AdapterResult",
    "DemoDataset",
    "ImageCheck",
    "ImageDecodeError",
    "IngestResult",
    "SampleRecord",
    "build_manifest",
    "generate_demo",
    "get_taxonomy",
    "inspect_image",
    "label_ids",
    "list_samples",
    "load_rgb",
    "normalise_label",
    "quarantine_summary",
]
