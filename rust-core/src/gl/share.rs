//! The `gl` capture path: the frame never leaves the GPU on its way to the encoder.
//!
//! On the first frame, with the host's context current, the host context is wrapped
//! (`GLContext::new_wrapped`) and a GStreamer GL context is created that shares objects with
//! it. GStreamer's elements get that context as their `gst.gl.app_context`, so the host, our
//! context and `glcolorconvert` all live in one share group. Each frame:
//!
//! 1. a texture is taken from a [`gst_gl::GLBufferPool`] (never waiting: an empty pool means
//!    the encoder is behind and the frame is dropped);
//! 2. on the render thread, the host's frame is blitted into it, flipped to GStreamer's
//!    top-down row order, and a fence is placed behind the blit;
//! 3. the buffer is pushed; a probe on `appsrc`'s output waits for the fence in GStreamer's
//!    GL thread before anything downstream reads the texture. The render thread never waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gst_gl::prelude::*;

use super::{
    GL_COLOR_ATTACHMENT0, GL_COLOR_BUFFER_BIT, GL_DRAW_FRAMEBUFFER, GL_DRAW_FRAMEBUFFER_BINDING,
    GL_NEAREST, GL_SCISSOR_TEST, GL_SYNC_FLUSH_COMMANDS_BIT, GL_SYNC_GPU_COMMANDS_COMPLETE,
    GL_TEXTURE_2D, GLuint, GlError, GlFns, GlSource, ReadBinding,
};

/// Textures in the pool: enough for one in the encoder, one queued and one being filled.
const POOL_TEXTURES: u32 = 4;

/// How long GStreamer's GL thread waits for a frame's blit before giving up (a wedged GPU
/// must not hang the pipeline forever).
const FENCE_TIMEOUT_NS: u64 = 1_000_000_000;

/// Fences of blits not yet waited for, by texture id. A sync object is a pointer; it is
/// stored as an integer so the table can be shared with GStreamer's threads.
type PendingFences = Arc<Mutex<HashMap<GLuint, usize>>>;

/// The shared-context capture.
pub struct GlShare {
    fns: GlFns,
    display: gst_gl::GLDisplay,
    /// The host's context, wrapped; kept alive for the share group's sake.
    _wrapped: gst_gl::GLContext,
    /// Our GStreamer context, sharing with the host's; owns the pool's textures.
    context: gst_gl::GLContext,
    pool: Option<(gst_gl::GLBufferPool, gst::Caps, (u32, u32))>,
    draw_fbo: GLuint,
    read_fbo: GLuint,
    pending: PendingFences,
    /// The frame rate the caps declare (the streamer's `fpsCap`).
    fps: u32,
}

fn share_error(what: impl std::fmt::Display) -> GlError {
    GlError::Share(what.to_string())
}

/// Finds the platform whose context is current on this thread and its display.
/// Calls the loaded platform's "current display" getter (`eglGetCurrentDisplay` or
/// `glXGetCurrentDisplay`), found among the symbols already in the process.
fn current_display(symbol: &[u8]) -> Result<usize, GlError> {
    // SAFETY: `dlopen(NULL)` gives the symbols already loaded into the process; it loads
    // nothing new and runs no initialisers.
    let this = libloading::os::unix::Library::this();
    // SAFETY: both getters take nothing and return a pointer-sized handle; they are only
    // called once the host's current context is known to be of their platform, so the
    // library that defines them is loaded.
    unsafe {
        let get: libloading::os::unix::Symbol<unsafe extern "C" fn() -> usize> =
            this.get(symbol).map_err(share_error)?;
        Ok(get())
    }
}

fn current_platform() -> Result<(gst_gl::GLPlatform, usize, gst_gl::GLDisplay), GlError> {
    let egl = gst_gl::GLContext::current_gl_context(gst_gl::GLPlatform::EGL);
    if egl != 0 {
        let display = current_display(b"eglGetCurrentDisplay\0")?;
        // SAFETY: `display` is the live EGLDisplay of the host's current context.
        let display =
            unsafe { gst_gl_egl::GLDisplayEGL::with_egl_display(display) }.map_err(share_error)?;
        return Ok((gst_gl::GLPlatform::EGL, egl, display.upcast()));
    }
    let glx = gst_gl::GLContext::current_gl_context(gst_gl::GLPlatform::GLX);
    if glx != 0 {
        let display = current_display(b"glXGetCurrentDisplay\0")?;
        // SAFETY: `display` is the live X11 `Display*` of the host's current context; the
        // wrapper does not close a display it did not open.
        let display =
            unsafe { gst_gl_x11::GLDisplayX11::with_display(display) }.map_err(share_error)?;
        return Ok((gst_gl::GLPlatform::GLX, glx, display.upcast()));
    }
    Err(share_error(
        "no current EGL or GLX context on this thread (is the host's context current?)",
    ))
}

impl GlShare {
    /// Wraps the host's current context and creates GStreamer's context sharing with it.
    pub fn new(fns: GlFns, fps: u32) -> Result<Self, GlError> {
        gst::init().map_err(share_error)?;
        let (platform, handle, display) = current_platform()?;
        let (api, major, minor) = gst_gl::GLContext::current_gl_api(platform);
        tracing::info!(
            ?platform,
            ?api,
            major,
            minor,
            "sharing the host's GL context"
        );
        // SAFETY: `handle` is the host's context, current on this thread, of `platform`.
        let wrapped = unsafe { gst_gl::GLContext::new_wrapped(&display, handle, platform, api) }
            .ok_or_else(|| share_error("GLContext::new_wrapped failed"))?;
        wrapped.activate(true).map_err(share_error)?;
        wrapped.fill_info().map_err(share_error)?;
        let context = gst_gl::GLContext::new(&display);
        context.create(Some(&wrapped)).map_err(share_error)?;
        // `activate(true)` only recorded the thread; the host's context is still current.
        let mut fbos = [0 as GLuint; 2];
        // SAFETY: out-pointer for two framebuffer names.
        unsafe { (fns.gen_framebuffers)(2, fbos.as_mut_ptr()) };
        fns.check("creating capture framebuffers")?;
        Ok(GlShare {
            fns,
            display,
            _wrapped: wrapped,
            context,
            pool: None,
            draw_fbo: fbos[0],
            read_fbo: fbos[1],
            pending: Arc::new(Mutex::new(HashMap::new())),
            fps,
        })
    }

    /// Answers GStreamer's `need-context` messages with our display and context, so every
    /// GL element joins the host's share group. Runs on GStreamer's threads.
    pub fn context_answerer(&self) -> Box<dyn Fn(&gst::Message) + Send + Sync> {
        let display = self.display.clone();
        let context = self.context.clone();
        Box::new(move |message| {
            let gst::MessageView::NeedContext(need) = message.view() else {
                return;
            };
            let Some(element) = message.src().and_then(|s| s.downcast_ref::<gst::Element>()) else {
                return;
            };
            let answer = match need.context_type() {
                t if t == *gst_gl::GL_DISPLAY_CONTEXT_TYPE => {
                    let answer = gst::Context::new(t, true);
                    answer.set_gl_display(&display);
                    answer
                }
                "gst.gl.app_context" => {
                    let mut answer = gst::Context::new("gst.gl.app_context", true);
                    if let Some(answer) = answer.get_mut() {
                        answer.structure_mut().set("context", &context);
                    }
                    answer
                }
                _ => return,
            };
            element.set_context(&answer);
        })
    }

    /// Answers GL elements' `gst.gl.local_context` query at `appsrc` with our context:
    /// `glcolorconvert` only converts textures of its *own* context, so it must adopt ours
    /// rather than create one that merely shares with it.
    pub fn local_context_answerer(&self) -> Box<dyn Fn(&mut gst::QueryRef) -> bool + Send + Sync> {
        let context = self.context.clone();
        Box::new(move |query| {
            let gst::QueryViewMut::Context(query) = query.view_mut() else {
                return false;
            };
            if query.context_type() != "gst.gl.local_context" {
                return false;
            }
            let mut answer = gst::Context::new("gst.gl.local_context", false);
            if let Some(answer) = answer.get_mut() {
                answer.structure_mut().set("context", &context);
            }
            query.set_context(&answer);
            true
        })
    }

    /// A probe for `appsrc`'s output that waits (in GStreamer's GL thread) for each frame's
    /// blit fence before the texture is used downstream.
    pub fn fence_waiter(&self) -> impl Fn(&gst::Buffer) + Send + Sync + 'static {
        let pending = self.pending.clone();
        let context = self.context.clone();
        let fns = self.fns;
        move |buffer| {
            let Some(memory) = buffer
                .peek_memory(0)
                .downcast_memory_ref::<gst_gl::GLMemory>()
            else {
                return;
            };
            let fence = pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&memory.texture_id());
            if let Some(fence) = fence {
                context.thread_add(move |_| {
                    let sync = fence as super::GLsync;
                    // SAFETY: `sync` is a fence created on the render thread in this share
                    // group and deleted only here; our context is current in its thread.
                    unsafe {
                        (fns.client_wait_sync)(sync, GL_SYNC_FLUSH_COMMANDS_BIT, FENCE_TIMEOUT_NS);
                        (fns.delete_sync)(sync);
                    }
                });
            }
        }
    }

    fn pool_for(
        &mut self,
        width: u32,
        height: u32,
    ) -> Result<(gst_gl::GLBufferPool, gst::Caps), GlError> {
        if let Some((pool, caps, size)) = &self.pool {
            if *size == (width, height) {
                return Ok((pool.clone(), caps.clone()));
            }
            let _ = pool.set_active(false);
        }
        // A fixed rate: see `Pipeline::ensure_caps` (x264 delays variable-rate input).
        let caps = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgba, width, height)
            .fps(gst::Fraction::new(self.fps as i32, 1))
            .build()
            .map_err(share_error)?
            .to_caps()
            .map_err(share_error)?;
        let caps = {
            let mut caps = caps;
            let caps_mut = caps.make_mut();
            caps_mut.set_features_simple(Some(gst::CapsFeatures::new(["memory:GLMemory"])));
            caps_mut.set("texture-target", "2D");
            caps
        };
        let pool = gst_gl::GLBufferPool::new(&self.context);
        let mut config = pool.config();
        // min = max: every texture is made when the pool starts, never on the render thread.
        config.set_params(
            Some(&caps),
            width * height * 4,
            POOL_TEXTURES,
            POOL_TEXTURES,
        );
        pool.set_config(config).map_err(share_error)?;
        pool.set_active(true).map_err(share_error)?;
        self.pool = Some((pool.clone(), caps.clone(), (width, height)));
        Ok((pool, caps))
    }

    /// Blits the host's frame into a pooled texture. `Ok(None)` means the pool is empty (the
    /// encoder is behind) and the frame should be dropped.
    pub fn capture(
        &mut self,
        source: GlSource,
        width: u32,
        height: u32,
    ) -> Result<Option<(gst::Buffer, gst::Caps)>, GlError> {
        let (pool, caps) = self.pool_for(width, height)?;
        let params =
            gst::BufferPoolAcquireParams::with_flags(gst::BufferPoolAcquireFlags::DONTWAIT);
        let Ok(buffer) = pool.acquire_buffer(Some(&params)) else {
            return Ok(None);
        };
        let texture = buffer
            .peek_memory(0)
            .downcast_memory_ref::<gst_gl::GLMemory>()
            .map(|m| m.texture_id())
            .ok_or_else(|| share_error("pool buffer is not GL memory"))?;
        let fns = self.fns;
        fns.clear_errors();
        let read = ReadBinding::bind(&fns, source, self.read_fbo)?;
        let previous_draw = fns.integer(GL_DRAW_FRAMEBUFFER_BINDING) as GLuint;
        // SAFETY: our framebuffer and a texture of our share group; the blit reads the host's
        // bound read framebuffer (or its texture) and writes the whole texture, rows flipped
        // to top-down; scissoring is switched off for the blit and restored after.
        let fence = unsafe {
            let scissor = (fns.is_enabled)(GL_SCISSOR_TEST) != 0;
            if scissor {
                (fns.disable)(GL_SCISSOR_TEST);
            }
            (fns.bind_framebuffer)(GL_DRAW_FRAMEBUFFER, self.draw_fbo);
            (fns.framebuffer_texture_2d)(
                GL_DRAW_FRAMEBUFFER,
                GL_COLOR_ATTACHMENT0,
                GL_TEXTURE_2D,
                texture,
                0,
            );
            let (w, h) = (width as i32, height as i32);
            (fns.blit_framebuffer)(0, 0, w, h, 0, h, w, 0, GL_COLOR_BUFFER_BIT, GL_NEAREST);
            (fns.bind_framebuffer)(GL_DRAW_FRAMEBUFFER, previous_draw);
            if scissor {
                (fns.enable)(GL_SCISSOR_TEST);
            }
            let fence = (fns.fence_sync)(GL_SYNC_GPU_COMMANDS_COMPLETE, 0);
            // Another context will wait on the fence: it must reach the GPU.
            (fns.flush)();
            fence
        };
        drop(read);
        fns.check("blitting the frame into GStreamer's texture")?;
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(texture, fence as usize);
        Ok(Some((buffer, caps)))
    }

    /// Frees our framebuffers and the pool. Needs the host's context current.
    pub fn destroy(&mut self) {
        if let Some((pool, _, _)) = self.pool.take() {
            let _ = pool.set_active(false);
        }
        for (_, fence) in self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            // SAFETY: fences we created and nobody waited for.
            unsafe { (self.fns.delete_sync)(fence as super::GLsync) };
        }
        let fbos = [self.draw_fbo, self.read_fbo];
        // SAFETY: framebuffer names we generated.
        unsafe { (self.fns.delete_framebuffers)(2, fbos.as_ptr()) };
    }
}
