//! Elasticsearch client (placeholder).
