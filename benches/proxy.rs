//! Placeholder: the proxy benchmark lands in the next commit.
fn main() {}
