//! GL plumbing for the capture paths: function loading through the host's loader, and the
//! two ways a finished frame leaves the host's context.
//!
//! - [`readback`]: an asynchronous PBO ring with fences into system memory; works with any
//!   host context.
//! - [`share`]: a GPU copy into a texture of a GStreamer GL context that shares objects with
//!   the host's, so the frame stays on the GPU until the encoder (or `gldownload`).
//!
//! Every function here must be called on the host's render thread with its context current;
//! the caller (`Streamer::submit`) guarantees it. `unsafe` in this crate lives only here and
//! in `ffi`.

pub mod readback;
pub mod share;

use std::ffi::{CString, c_char, c_void};

/// A GL enum value.
pub(crate) type GLenum = u32;
/// A GL object name.
pub(crate) type GLuint = u32;
/// A GL signed integer.
pub(crate) type GLint = i32;
/// A GL size.
pub(crate) type GLsizei = i32;
/// A GL bitfield.
pub(crate) type GLbitfield = u32;
/// Size of a buffer in bytes.
pub(crate) type GLsizeiptr = isize;
/// Offset into a buffer in bytes.
pub(crate) type GLintptr = isize;
/// A fence sync object.
pub(crate) type GLsync = *const c_void;

pub(crate) const GL_NO_ERROR: GLenum = 0;
pub(crate) const GL_BGRA: GLenum = 0x80E1;
pub(crate) const GL_UNSIGNED_BYTE: GLenum = 0x1401;
pub(crate) const GL_PACK_ALIGNMENT: GLenum = 0x0D05;
pub(crate) const GL_PACK_ROW_LENGTH: GLenum = 0x0D02;
pub(crate) const GL_PIXEL_PACK_BUFFER: GLenum = 0x88EB;
pub(crate) const GL_PIXEL_PACK_BUFFER_BINDING: GLenum = 0x88ED;
pub(crate) const GL_STREAM_READ: GLenum = 0x88E1;
pub(crate) const GL_MAP_READ_BIT: GLbitfield = 0x0001;
pub(crate) const GL_SYNC_GPU_COMMANDS_COMPLETE: GLenum = 0x9117;
pub(crate) const GL_SYNC_FLUSH_COMMANDS_BIT: GLbitfield = 0x0001;
pub(crate) const GL_ALREADY_SIGNALED: GLenum = 0x911A;
pub(crate) const GL_CONDITION_SATISFIED: GLenum = 0x911C;
pub(crate) const GL_WAIT_FAILED: GLenum = 0x911D;
pub(crate) const GL_READ_FRAMEBUFFER: GLenum = 0x8CA8;
pub(crate) const GL_DRAW_FRAMEBUFFER: GLenum = 0x8CA9;
pub(crate) const GL_READ_FRAMEBUFFER_BINDING: GLenum = 0x8CAA;
pub(crate) const GL_DRAW_FRAMEBUFFER_BINDING: GLenum = 0x8CA6;
pub(crate) const GL_COLOR_ATTACHMENT0: GLenum = 0x8CE0;
pub(crate) const GL_FRAMEBUFFER_COMPLETE: GLenum = 0x8CD5;
pub(crate) const GL_TEXTURE_2D: GLenum = 0x0DE1;
pub(crate) const GL_COLOR_BUFFER_BIT: GLbitfield = 0x0000_4000;
pub(crate) const GL_NEAREST: GLenum = 0x2600;
pub(crate) const GL_SCISSOR_TEST: GLenum = 0x0C11;

/// The host's `get_proc_address` and its userdata.
#[derive(Clone, Copy)]
pub struct GlLoader {
    get: unsafe extern "C" fn(*mut c_void, *const c_char) -> *const c_void,
    userdata: *mut c_void,
}

// SAFETY: the loader is only ever called on the host's render thread (the capture paths run
// there); the pointer is carried, not dereferenced, elsewhere.
unsafe impl Send for GlLoader {}

impl GlLoader {
    /// Wraps the host's loader.
    pub fn new(
        get: unsafe extern "C" fn(*mut c_void, *const c_char) -> *const c_void,
        userdata: *mut c_void,
    ) -> Self {
        GlLoader { get, userdata }
    }

    /// Resolves one function, `None` when the host does not have it.
    pub fn resolve(&self, name: &str) -> Option<*const c_void> {
        let cname = CString::new(name).ok()?;
        // SAFETY: the host promised a loader callable with its userdata and a NUL-terminated
        // name on the render thread, which is where capture initialisation runs.
        let ptr = unsafe { (self.get)(self.userdata, cname.as_ptr()) };
        (!ptr.is_null()).then_some(ptr)
    }
}

/// A GL failure in a capture path.
#[derive(Debug, thiserror::Error)]
pub enum GlError {
    /// The host's context lacks a function we need (GL < 3.2 or no loader given).
    #[error("GL function {0} is not available (needs OpenGL 3.2 or ES 3.0 and a loader)")]
    MissingFunction(&'static str),
    /// No loader was passed to `osw_streamer_new`.
    #[error(
        "no GL loader was given to osw_streamer_new; use osw_streamer_submit_pixels or pass one"
    )]
    NoLoader,
    /// A GL call reported an error.
    #[error("GL error 0x{code:04x} during {during}")]
    Call { code: GLenum, during: &'static str },
    /// The frame framebuffer or texture could not be read.
    #[error("framebuffer incomplete (status 0x{0:04x})")]
    IncompleteFramebuffer(GLenum),
    /// Sharing the host's context with GStreamer failed.
    #[error("cannot share the host's GL context with GStreamer: {0}")]
    Share(String),
}

macro_rules! gl_functions {
    ($($field:ident : $name:literal => fn($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        /// The GL entry points the capture paths use, resolved once through the host's loader.
        #[allow(non_snake_case)]
        #[derive(Clone, Copy)]
        pub struct GlFns {
            $(pub $field: unsafe extern "system" fn($($arg),*) $(-> $ret)?,)*
        }

        impl GlFns {
            /// Resolves every entry point, failing on the first missing one.
            pub fn load(loader: &GlLoader) -> Result<Self, GlError> {
                Ok(GlFns {
                    $($field: {
                        let ptr = loader.resolve($name).ok_or(GlError::MissingFunction($name))?;
                        // SAFETY: the loader returned the address of the GL function named
                        // `$name`, whose C signature is the one declared in this table.
                        unsafe {
                            std::mem::transmute::<
                                *const c_void,
                                unsafe extern "system" fn($($arg),*) $(-> $ret)?,
                            >(ptr)
                        }
                    },)*
                })
            }
        }
    };
}

gl_functions! {
    get_error: "glGetError" => fn() -> GLenum;
    get_integerv: "glGetIntegerv" => fn(GLenum, *mut GLint);
    gen_buffers: "glGenBuffers" => fn(GLsizei, *mut GLuint);
    delete_buffers: "glDeleteBuffers" => fn(GLsizei, *const GLuint);
    bind_buffer: "glBindBuffer" => fn(GLenum, GLuint);
    buffer_data: "glBufferData" => fn(GLenum, GLsizeiptr, *const c_void, GLenum);
    map_buffer_range: "glMapBufferRange" => fn(GLenum, GLintptr, GLsizeiptr, GLbitfield) -> *mut c_void;
    unmap_buffer: "glUnmapBuffer" => fn(GLenum) -> u8;
    read_pixels: "glReadPixels" => fn(GLint, GLint, GLsizei, GLsizei, GLenum, GLenum, *mut c_void);
    pixel_storei: "glPixelStorei" => fn(GLenum, GLint);
    fence_sync: "glFenceSync" => fn(GLenum, GLbitfield) -> GLsync;
    client_wait_sync: "glClientWaitSync" => fn(GLsync, GLbitfield, u64) -> GLenum;
    delete_sync: "glDeleteSync" => fn(GLsync);
    flush: "glFlush" => fn();
    gen_framebuffers: "glGenFramebuffers" => fn(GLsizei, *mut GLuint);
    delete_framebuffers: "glDeleteFramebuffers" => fn(GLsizei, *const GLuint);
    bind_framebuffer: "glBindFramebuffer" => fn(GLenum, GLuint);
    framebuffer_texture_2d: "glFramebufferTexture2D" => fn(GLenum, GLenum, GLenum, GLuint, GLint);
    check_framebuffer_status: "glCheckFramebufferStatus" => fn(GLenum) -> GLenum;
    blit_framebuffer: "glBlitFramebuffer" => fn(GLint, GLint, GLint, GLint, GLint, GLint, GLint, GLint, GLbitfield, GLenum);
    is_enabled: "glIsEnabled" => fn(GLenum) -> u8;
    disable: "glDisable" => fn(GLenum);
    enable: "glEnable" => fn(GLenum);
}

impl GlFns {
    /// Returns an error if GL recorded one since the last check.
    pub fn check(&self, during: &'static str) -> Result<(), GlError> {
        // SAFETY: glGetError takes no arguments; the context is current (module contract).
        let code = unsafe { (self.get_error)() };
        if code == GL_NO_ERROR {
            Ok(())
        } else {
            Err(GlError::Call { code, during })
        }
    }

    /// Clears errors the host left behind, so ours are not confused with theirs.
    pub fn clear_errors(&self) {
        for _ in 0..16 {
            // SAFETY: as in `check`.
            if unsafe { (self.get_error)() } == GL_NO_ERROR {
                break;
            }
        }
    }

    /// Reads one integer state value.
    pub fn integer(&self, name: GLenum) -> GLint {
        let mut value = 0;
        // SAFETY: `value` is a valid out-pointer for one integer; `name` is a scalar query.
        unsafe { (self.get_integerv)(name, &mut value) };
        value
    }
}

/// Where the host's frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlSource {
    /// The currently bound read framebuffer.
    ReadFramebuffer,
    /// A 2D texture.
    Texture(GLuint),
}

/// Makes `source` the read framebuffer and restores the host's binding when dropped.
pub struct ReadBinding<'a> {
    fns: &'a GlFns,
    previous: GLuint,
}

impl<'a> ReadBinding<'a> {
    /// Binds the frame for reading. For a texture, `scratch_fbo` gets it attached.
    pub fn bind(fns: &'a GlFns, source: GlSource, scratch_fbo: GLuint) -> Result<Self, GlError> {
        let previous = fns.integer(GL_READ_FRAMEBUFFER_BINDING) as GLuint;
        let binding = ReadBinding { fns, previous };
        if let GlSource::Texture(texture) = source {
            // SAFETY: `scratch_fbo` is a framebuffer name we generated in this context and
            // `texture` is the host's 2D texture; both calls take plain values.
            unsafe {
                (fns.bind_framebuffer)(GL_READ_FRAMEBUFFER, scratch_fbo);
                (fns.framebuffer_texture_2d)(
                    GL_READ_FRAMEBUFFER,
                    GL_COLOR_ATTACHMENT0,
                    GL_TEXTURE_2D,
                    texture,
                    0,
                );
            }
            // SAFETY: a plain status query on the bound read framebuffer.
            let status = unsafe { (fns.check_framebuffer_status)(GL_READ_FRAMEBUFFER) };
            if status != GL_FRAMEBUFFER_COMPLETE {
                return Err(GlError::IncompleteFramebuffer(status));
            }
        }
        Ok(binding)
    }
}

impl Drop for ReadBinding<'_> {
    fn drop(&mut self) {
        // SAFETY: restores the framebuffer name the host had bound before we started.
        unsafe { (self.fns.bind_framebuffer)(GL_READ_FRAMEBUFFER, self.previous) };
    }
}
