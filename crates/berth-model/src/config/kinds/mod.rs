//! One module per resource kind: its spec, its keyword list and the reader that types them.

pub mod container;
pub mod fs;
pub mod ip;
pub mod sync;
pub mod vg;
