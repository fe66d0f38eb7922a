//! The `gl` capture path (work in progress in this commit: reports itself unavailable).

use super::{GlError, GlFns, GlSource};

/// GPU-side copy into a GStreamer GL context shared with the host's.
pub struct GlShare {
    _fns: GlFns,
}

impl GlShare {
    /// Wraps the host's current context.
    pub fn new(fns: GlFns) -> Result<Self, GlError> {
        let _ = fns;
        Err(GlError::Share("the gl capture path is not built yet".into()))
    }

    /// Answers GStreamer's GL context queries with the shared context.
    pub fn context_answerer(&self) -> Box<dyn Fn(&gst::Message) + Send + Sync> {
        Box::new(|_| {})
    }

    /// Copies the frame into a pooled GL texture.
    pub fn capture(&mut self, _source: GlSource, _w: u32, _h: u32) -> Result<(gst::Buffer, gst::Caps), GlError> {
        Err(GlError::Share("not built".into()))
    }

    /// Frees GL objects.
    pub fn destroy(&mut self) {}
}
