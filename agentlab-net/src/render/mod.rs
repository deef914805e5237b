//! Pure rendering: [`NetConfig`](crate::NetConfig) (+ sandboxes) → nft script text.
//!
//! Nothing here touches the host; the output is golden-tested and piped into `nft -f -` by
//! [`NftFirewall`](crate::NftFirewall).

mod base;
mod elements;

pub use base::{render_base, render_delete};
pub(crate) use elements::same_family;
pub use elements::{
    Element, render_elements, render_sandbox_add, render_sandbox_remove, sandbox_elements,
};
