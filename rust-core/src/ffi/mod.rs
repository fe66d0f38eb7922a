//! The C ABI: the only door into rust-core.
//!
//! Conventions (after rustls-ffi):
//! - every exported body runs inside [`ffi_panic_boundary!`], so no panic crosses into C;
//! - every pointer goes through the NULL-checking macros in [`ptr`];
//! - fallible calls return [`OswResult`], whose numbers never change, and write out-params
//!   only on success; [`osw_last_error`] gives the message behind the last failure;
//! - C passes enums *into* the library as plain integers ([`osw_result_text`] takes a
//!   `uint32_t`): any number can arrive, and an out-of-range Rust enum is undefined behaviour;
//! - types are opaque and come in `_new`/`_free` pairs.
//!
//! `cbindgen` turns this module into `include/openspace_webrtc.h`, which is committed; the
//! test `header_is_up_to_date` fails when the two drift apart.

// Exported functions take raw pointers from C by design; each checks them (macros in `ptr`)
// before use, and C callers cannot see Rust's `unsafe` anyway (as in rustls-ffi).
#![allow(clippy::not_unsafe_ptr_arg_deref)]

#[macro_use]
mod panic;
#[macro_use]
mod ptr;
mod error;
mod event;
mod streamer;

pub use error::{OswResult, osw_last_error, osw_result_text};
pub use event::{OswEvent, OswEventKind};
pub use streamer::{OswGlGetProcAddress, OswStreamer};
