//! The bounded connection table.
