//! rust-core: streams a host application's finished GL frames to web browsers over WebRTC,
//! and brings the viewers' input back.
//!
//! # Layout
//!
//! - [`ffi`]: the C ABI, the only door in (`include/openspace_webrtc.h` is generated from it).
//! - [`streamer`]: ties one host window to a pipeline, a signaling endpoint and an event queue.
//! - [`config`]: the JSON configuration and its environment overrides.
//! - [`gl`]: GL function loading and the two capture paths (`gl` share, `readback` PBO ring).
//! - [`pipeline`]: the GStreamer pipeline: source, encoder probing, one `webrtcbin` per viewer.
//! - [`signaling`]: the WebSocket endpoint (viewers and the orchestrator's control client).
//! - [`input`]: validation of viewers' input and the queue the host drains.
//! - [`stats`]: counters shared by every thread, reported as JSON.
//!
//! The wire protocol is documented in `SIGNALING.md` next to this crate.

// GL loading (dlopen) and context sharing (GLX, EGL on X11) are written for Linux only; say
// so at once rather than in a cascade of missing `unix` items.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "rust-core supports Linux only: it loads GL with dlopen and shares the host's context \
     through GLX or EGL; there is no WGL or CGL path"
);

pub mod app;
pub mod config;
pub mod ffi;
pub(crate) mod gl;
pub mod input;
pub mod pipeline;
pub mod signaling;
pub mod stats;
pub mod streamer;

pub use openspace_webrtc_protocol as protocol;
