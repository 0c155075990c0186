//! Config (placeholder).
