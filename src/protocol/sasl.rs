//! SASL (placeholder).
