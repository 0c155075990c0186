//! One converted connection and its subflows.
