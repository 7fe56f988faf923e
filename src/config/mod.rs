//! The legacy Sun MMP configuration: an instance directory with `AService.cfg` and one
//! `*AService.cfg` per proxy, read into the typed [`Config`].
//!
//! TODO(config helper): lexer.rs, options.rs, load().
pub mod template;
pub mod types;

pub use types::*;
/// TEMPORARY stub.
pub fn load(_dir: &std::path::Path) -> Result<(Config, Vec<String>), Vec<String>> {
    Err(vec!["stub".into()])
}
