"""The derived vector index: one interface, Qdrant Edge embedded, a Qdrant server at scale."""

from .base import IndexHit, IndexPoint, IndexQuery, VectorIndex, point_uuid

__all__ = ["IndexHit", "IndexPoint", "IndexQuery", "VectorIndex", "point_uuid"]
