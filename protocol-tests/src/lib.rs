//! Wire-level tests for Gregor live in `tests/`; this crate has no library code.
