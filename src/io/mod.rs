//! I/O (placeholder).
