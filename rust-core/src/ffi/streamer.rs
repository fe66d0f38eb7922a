//! `osw_streamer`: one streaming engine per host window.

use std::ffi::{c_char, c_void};

use super::OswResult;
use super::error::{copy_c_string, set_last_error};
use super::event::{OswAppRequest, OswEvent};
use crate::config::StreamerConfig;
use crate::gl::GlLoader;
use crate::pipeline::MAX_FRAMES_PER_CALL;
use crate::streamer::{FrameSource, Streamer, StreamerError, StreamerView, SubmitOutcome};
use std::cell::UnsafeCell;

/// Looks up a GL function by name (for example `glfwGetProcAddress` behind a small wrapper).
/// `userdata` is passed back untouched.
pub type OswGlGetProcAddress =
    Option<unsafe extern "C" fn(userdata: *mut c_void, name: *const c_char) -> *const c_void>;

/// An opaque streamer. Create with `osw_streamer_new`, destroy with `osw_streamer_free`.
pub struct OswStreamer {
    _private: [u8; 0],
}

/// What an `OswStreamer` points to. The threading contract in types: `view` is `Sync` and is
/// all that the any-thread functions (stats, events, port) touch; `render` is reached only by
/// the `submit_*` functions, which the host calls from its render thread, and by `free`.
struct Handle {
    view: StreamerView,
    render: UnsafeCell<Streamer>,
}

impl OswStreamer {
    fn from_streamer(streamer: Streamer) -> *mut OswStreamer {
        let handle = Box::new(Handle {
            view: streamer.view(),
            render: UnsafeCell::new(streamer),
        });
        Box::into_raw(handle).cast()
    }

    fn as_handle(ptr: *const OswStreamer) -> *const Handle {
        ptr.cast()
    }
}

fn fail(err: StreamerError) -> OswResult {
    let code = err.result_code();
    set_last_error(err.to_string());
    code
}

fn submit_result(outcome: Result<SubmitOutcome, StreamerError>) -> OswResult {
    match outcome {
        Ok(SubmitOutcome::Accepted | SubmitOutcome::SkippedByFpsCap) => OswResult::Ok,
        Ok(SubmitOutcome::Dropped) => OswResult::FrameDropped,
        Err(err) => fail(err),
    }
}

/// Creates a streamer from a JSON configuration (see `rust-core/SIGNALING.md`; `"{}"` gives
/// the defaults; `OSW_*` environment variables override fields) and starts its signaling
/// endpoint. `get_proc_address` resolves GL functions for the capture paths; it may be NULL
/// for a host that only calls `osw_streamer_submit_pixels`.
///
/// Call on the host's render thread. On success `*streamer_out` receives the streamer.
#[unsafe(no_mangle)]
pub extern "C" fn osw_streamer_new(
    config_json: *const c_char,
    get_proc_address: OswGlGetProcAddress,
    userdata: *mut c_void,
    streamer_out: *mut *mut OswStreamer,
) -> OswResult {
    ffi_panic_boundary! {
        let json = try_str!(config_json, "config_json");
        let out = try_mut!(streamer_out, "streamer_out");
        let config = match StreamerConfig::from_json(json) {
            Ok(config) => config,
            Err(err) => {
                set_last_error(err.to_string());
                return OswResult::InvalidConfig;
            }
        };
        let loader = get_proc_address.map(|f| GlLoader::new(f, userdata));
        match Streamer::new(config, loader) {
            Ok(streamer) => {
                *out = OswStreamer::from_streamer(streamer);
                OswResult::Ok
            }
            Err(err) => fail(err),
        }
    }
}

/// Stops the streamer: says bye to every viewer, stops the pipeline, joins every thread and
/// frees the capture's GL objects. Call on the render thread with the host's GL context
/// current (GL objects are deleted there). NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn osw_streamer_free(streamer: *mut OswStreamer) {
    ffi_panic_boundary! {
        if streamer.is_null() {
            return;
        }
        // SAFETY: non-NULL, created by `osw_streamer_new` via `Box::into_raw`, and the caller
        // gives up its pointer with this call.
        let handle = unsafe { Box::from_raw(OswStreamer::as_handle(streamer).cast_mut()) };
        handle.render.into_inner().shutdown();
    }
}

/// Hands over the frame in the currently bound read framebuffer (`GL_READ_FRAMEBUFFER`),
/// `width` × `height` pixels from its origin. Call on the render thread with the context
/// current, after the frame is finished. Returns quickly: the copy runs on the GPU and the
/// encoder runs on its own thread. Returns `FrameDropped` when the encoder is still busy (the
/// frame is counted as dropped) — not an error the host must act on.
#[unsafe(no_mangle)]
pub extern "C" fn osw_streamer_submit_framebuffer(
    streamer: *mut OswStreamer,
    width: u32,
    height: u32,
) -> OswResult {
    ffi_panic_boundary! {
        let handle = try_ref!(OswStreamer::as_handle(streamer), "streamer");
        // SAFETY: a live handle from `osw_streamer_new`; `submit_*` calls come from the
        // render thread, one at a time (this function's contract), and nothing else reaches
        // `render` while the streamer lives, so this is the only reference to it.
        let streamer = unsafe { &mut *handle.render.get() };
        submit_result(streamer.submit(FrameSource::ReadFramebuffer, width, height))
    }
}

/// Like `osw_streamer_submit_framebuffer`, but reads the given `GL_TEXTURE_2D` texture.
#[unsafe(no_mangle)]
pub extern "C" fn osw_streamer_submit_texture(
    streamer: *mut OswStreamer,
    texture: u32,
    width: u32,
    height: u32,
) -> OswResult {
    ffi_panic_boundary! {
        let handle = try_ref!(OswStreamer::as_handle(streamer), "streamer");
        // SAFETY: a live handle from `osw_streamer_new`; `submit_*` calls come from the
        // render thread, one at a time (this function's contract), and nothing else reaches
        // `render` while the streamer lives, so this is the only reference to it.
        let streamer = unsafe { &mut *handle.render.get() };
        if texture == 0 {
            set_last_error("texture 0 is not a texture".into());
            return OswResult::InvalidArgument;
        }
        submit_result(streamer.submit(FrameSource::Texture(texture), width, height))
    }
}

/// Hands over a frame already in system memory: `height` rows of `width` RGBA pixels, top row
/// first, `stride` bytes apart. For hosts without GL; needs no GL context.
#[unsafe(no_mangle)]
pub extern "C" fn osw_streamer_submit_pixels(
    streamer: *mut OswStreamer,
    rgba: *const u8,
    width: u32,
    height: u32,
    stride: usize,
) -> OswResult {
    ffi_panic_boundary! {
        let handle = try_ref!(OswStreamer::as_handle(streamer), "streamer");
        // SAFETY: a live handle from `osw_streamer_new`; `submit_*` calls come from the
        // render thread, one at a time (this function's contract), and nothing else reaches
        // `render` while the streamer lives, so this is the only reference to it.
        let streamer = unsafe { &mut *handle.render.get() };
        if rgba.is_null() {
            set_last_error("`rgba` is NULL".into());
            return OswResult::NullParameter;
        }
        let row = width as usize * 4;
        if stride < row || height == 0 {
            set_last_error(format!("stride {stride} is less than width*4 = {row}, or height is 0"));
            return OswResult::InvalidArgument;
        }
        let len = stride * (height as usize - 1) + row;
        // SAFETY: `rgba` is non-NULL and the caller promises `height` rows of `stride` bytes
        // (the last row needs only `width * 4`), valid for the duration of the call.
        let pixels = unsafe { std::slice::from_raw_parts(rgba, len) };
        submit_result(streamer.submit(FrameSource::Pixels { data: pixels, stride }, width, height))
    }
}

/// Hands over sound (with `"audio": "host"` in the configuration): `frames` sample frames of
/// signed 16-bit PCM, `channels` (1 or 2) interleaved, at `rate` Hz (8000..=192000), at most a
/// second per call. The samples start now: they play with the frame the host submits next,
/// so hand each frame's sound right before its `osw_streamer_submit_*`, in real-time amounts
/// (on average `rate` frames a second). Consecutive calls are laid end to end (a frame loop's
/// jitter averages out); after a gap of 250 ms, or once the sound would run on average 30 ms
/// before its frames or 80 ms after them, it starts afresh at the call's time (stats
/// `audioResyncs`). One Opus encoder takes it for every viewer. Never waits; any thread may
/// call it (calls from several threads at once are safe, but their order is the sound's).
/// Returns `FrameDropped` (not taken, counted in stats as `audioDropped`) before the first
/// frame was submitted, `InvalidArgument` for another audio mode or a format outside the
/// ranges.
#[unsafe(no_mangle)]
pub extern "C" fn osw_streamer_submit_audio(
    streamer: *mut OswStreamer,
    interleaved: *const i16,
    frames: usize,
    rate: u32,
    channels: u32,
) -> OswResult {
    ffi_panic_boundary! {
        let handle = try_ref!(OswStreamer::as_handle(streamer), "streamer");
        if interleaved.is_null() {
            set_last_error("`interleaved` is NULL".into());
            return OswResult::NullParameter;
        }
        // Checked before the slice is made: the length is the caller's promise.
        if !(1..=2).contains(&channels) || frames == 0 || frames > MAX_FRAMES_PER_CALL {
            set_last_error(format!(
                "{frames} frames of {channels} channels: 1..={MAX_FRAMES_PER_CALL} frames of \
                 1 or 2 channels are taken"
            ));
            return OswResult::InvalidArgument;
        }
        let len = frames * channels as usize;
        // SAFETY: `interleaved` is non-NULL and the caller promises `frames * channels`
        // readable samples for the duration of the call; `len` is bounded above.
        let pcm = unsafe { std::slice::from_raw_parts(interleaved, len) };
        submit_result(handle.view.submit_audio(pcm, frames, rate, channels))
    }
}

/// Takes the oldest queued input or control event. Returns true and fills `*event_out` when
/// there was one, false when the queue is empty (or on a NULL argument). Call on the host's
/// main thread, typically in a loop at the start of each frame.
#[unsafe(no_mangle)]
pub extern "C" fn osw_streamer_poll_event(
    streamer: *mut OswStreamer,
    event_out: *mut OswEvent,
) -> bool {
    ffi_panic_boundary! {
        if streamer.is_null() || event_out.is_null() {
            set_last_error("`streamer` or `event_out` is NULL".into());
            return false;
        }
        // SAFETY: non-NULL (checked above); a live streamer from `osw_streamer_new`. Only its
        // thread-safe view is used.
        let view = unsafe { &(*OswStreamer::as_handle(streamer)).view };
        match view.poll_event() {
            Some(event) => {
                // SAFETY: non-NULL (checked above); the caller owns a writable `OswEvent`.
                unsafe { *event_out = OswEvent::from(&event) };
                true
            }
            None => false,
        }
    }
}

/// Writes the streamer's stats as NUL-terminated JSON into `buf` (see `rust-core/SIGNALING.md`
/// for the fields) and the size needed, including the NUL, into `*out_n`. Returns
/// `BufferTooSmall` (with `*out_n` set) when `len` is too small. Safe to call from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn osw_streamer_stats_json(
    streamer: *const OswStreamer,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> OswResult {
    ffi_panic_boundary! {
        let handle = try_ref!(OswStreamer::as_handle(streamer), "streamer");
        let out_n = try_mut!(out_n, "out_n");
        let json = handle.view.stats().to_string();
        // SAFETY: the caller promises `buf` is NULL or has `len` writable bytes.
        let (needed, written) = unsafe { copy_c_string(&json, buf, len) };
        *out_n = needed;
        if written {
            OswResult::Ok
        } else {
            set_last_error(format!("stats need {needed} bytes, buffer has {len}"));
            OswResult::BufferTooSmall
        }
    }
}

/// Takes the oldest owner's request from the `app` channel (see `rust-core/SIGNALING.md`).
/// With one waiting, fills `*request_out`, writes its text (the script or the view's name) as
/// a NUL-terminated string into `text`, and returns `Ok`; with none, returns `Ok` with
/// `request_out->kind` `OSW_APP_REQUEST_KIND_NONE`. When `len` is too small for the text,
/// returns `BufferTooSmall` with `*out_n` set to the size needed, and the request stays first
/// in line (texts are at most 16 KiB, so a 16 KiB + 1 buffer always does). `*out_n` is the
/// text's size with the NUL. Call on the host's main thread, like `osw_streamer_poll_event`.
#[unsafe(no_mangle)]
pub extern "C" fn osw_streamer_poll_app_request(
    streamer: *const OswStreamer,
    request_out: *mut OswAppRequest,
    text: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> OswResult {
    ffi_panic_boundary! {
        let handle = try_ref!(OswStreamer::as_handle(streamer), "streamer");
        let request_out = try_mut!(request_out, "request_out");
        let out_n = try_mut!(out_n, "out_n");
        if text.is_null() {
            set_last_error("`text` is NULL".into());
            return OswResult::NullParameter;
        }
        match handle.view.poll_app_request(len) {
            Ok(None) => {
                *request_out = OswAppRequest::default_none();
                *out_n = 0;
                OswResult::Ok
            }
            Ok(Some(request)) => {
                // SAFETY: `text` is non-NULL (checked) and the caller promises `len` writable
                // bytes; the request was taken only because its text fits.
                let (needed, _) = unsafe { copy_c_string(&request.text, text, len) };
                *request_out = OswAppRequest::from(&request);
                *out_n = needed;
                OswResult::Ok
            }
            Err(needed) => {
                *request_out = OswAppRequest::default_none();
                *out_n = needed;
                set_last_error(format!("the app request needs {needed} bytes, buffer has {len}"));
                OswResult::BufferTooSmall
            }
        }
    }
}

/// Answers app request `request_id`: `ok` says whether it was done; `message` (NULL or a
/// NUL-terminated UTF-8 string) says why not, or what a script returned. The viewer who asked
/// gets it. `InvalidArgument` for a request that is not open (answered already, or timed out
/// after 30 s, when the viewer was told the host did not answer). Safe from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn osw_streamer_reply_app_request(
    streamer: *const OswStreamer,
    request_id: u64,
    ok: bool,
    message: *const c_char,
) -> OswResult {
    ffi_panic_boundary! {
        let handle = try_ref!(OswStreamer::as_handle(streamer), "streamer");
        let message = if message.is_null() {
            None
        } else {
            // SAFETY: non-NULL; the caller promises a NUL-terminated string.
            match unsafe { std::ffi::CStr::from_ptr(message) }.to_str() {
                Ok(text) => Some(text.to_string()),
                Err(_) => {
                    set_last_error("`message` is not UTF-8".into());
                    return OswResult::InvalidArgument;
                }
            }
        };
        match handle.view.reply_app_request(request_id, ok, message) {
            Ok(()) => OswResult::Ok,
            Err(err) => {
                set_last_error(err.to_string());
                OswResult::InvalidArgument
            }
        }
    }
}

/// Publishes the host's status, a NUL-terminated JSON object, to every viewer's page (and to
/// each that joins later); by convention `{"views":["Earth",…]}` lists the views
/// `goToView` knows. `InvalidArgument` when it is not a JSON object. Safe from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn osw_streamer_publish_app_status(
    streamer: *const OswStreamer,
    status_json: *const c_char,
) -> OswResult {
    ffi_panic_boundary! {
        let handle = try_ref!(OswStreamer::as_handle(streamer), "streamer");
        if status_json.is_null() {
            set_last_error("`status_json` is NULL".into());
            return OswResult::NullParameter;
        }
        // SAFETY: non-NULL; the caller promises a NUL-terminated string.
        let Ok(json) = unsafe { std::ffi::CStr::from_ptr(status_json) }.to_str() else {
            set_last_error("`status_json` is not UTF-8".into());
            return OswResult::InvalidArgument;
        };
        match handle.view.publish_app_status(json) {
            Ok(()) => OswResult::Ok,
            Err(err) => {
                set_last_error(err.to_string());
                OswResult::InvalidArgument
            }
        }
    }
}

/// The port the signaling endpoint listens on (useful with `listenPort: 0`), or 0 for NULL.
#[unsafe(no_mangle)]
pub extern "C" fn osw_streamer_signaling_port(streamer: *const OswStreamer) -> u16 {
    ffi_panic_boundary! {
        if streamer.is_null() {
            return 0;
        }
        // SAFETY: non-NULL; a live streamer from `osw_streamer_new`. Only its thread-safe view
        // is used.
        let view = unsafe { &(*OswStreamer::as_handle(streamer)).view };
        view.signaling_port()
    }
}

/// The library's version, a static NUL-terminated string.
#[unsafe(no_mangle)]
pub extern "C" fn osw_version() -> *const c_char {
    ffi_panic_boundary! {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
    }
}
