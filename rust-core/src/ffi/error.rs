//! The result codes of the C ABI and the thread-local "last error" text behind them.

use std::cell::RefCell;
use std::ffi::{CStr, c_char};

/// Result of a fallible C ABI call. The numbers are fixed forever: a retired code keeps its
/// number as a comment and is never reused.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OswResult {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 1,
    /// An argument was out of range or malformed (see `osw_last_error`).
    InvalidArgument = 2,
    /// The configuration JSON was malformed or had invalid values.
    InvalidConfig = 3,
    /// A GL call failed or the needed GL functions are missing.
    GlError = 4,
    /// GStreamer could not build or run the pipeline (missing plugin, encoder failure).
    PipelineError = 5,
    /// The signaling endpoint could not start (port in use, bad address).
    SignalingError = 6,
    /// The output buffer is too small; `out_n` holds the size needed.
    BufferTooSmall = 7,
    /// The frame was not taken because the encoder is still busy with earlier ones (counted
    /// as dropped). Not an error the host must act on.
    FrameDropped = 8,
    /// A panic was caught inside the library; the object may be unusable.
    Panic = 9,
}

/// The text of each result code, indexed by its number: the one table behind
/// [`OswResult::text`] and [`osw_result_text`]. A retired code keeps its row (with a
/// "retired" text) so the numbers after it stay put.
const RESULT_TEXTS: [(OswResult, &CStr); 10] = [
    (OswResult::Ok, c"ok"),
    (
        OswResult::NullParameter,
        c"a required pointer argument was NULL",
    ),
    (OswResult::InvalidArgument, c"invalid argument"),
    (OswResult::InvalidConfig, c"invalid configuration"),
    (OswResult::GlError, c"OpenGL error"),
    (OswResult::PipelineError, c"GStreamer pipeline error"),
    (OswResult::SignalingError, c"signaling endpoint error"),
    (OswResult::BufferTooSmall, c"output buffer too small"),
    (OswResult::FrameDropped, c"frame dropped: encoder busy"),
    (OswResult::Panic, c"internal panic"),
];

/// What `osw_result_text` says for a number that is no `OswResult` (a newer library's code,
/// or garbage): C can pass any integer, so this is an answer, not undefined behaviour.
const UNKNOWN_RESULT_TEXT: &CStr = c"unknown result code";

// Checked at compile time so a lookup by number can never find the wrong row: every row sits
// at its code's index, and the table reaches the last variant (update it when adding one).
const _: () = {
    let mut index = 0;
    while index < RESULT_TEXTS.len() {
        assert!(
            RESULT_TEXTS[index].0 as usize == index,
            "RESULT_TEXTS row out of order"
        );
        index += 1;
    }
    assert!(
        RESULT_TEXTS.len() == OswResult::Panic as usize + 1,
        "RESULT_TEXTS misses a code"
    );
};

impl OswResult {
    /// The variant with this number, if any.
    pub(crate) fn from_code(code: u32) -> Option<Self> {
        let index = usize::try_from(code).ok()?;
        RESULT_TEXTS.get(index).map(|(result, _)| *result)
    }

    /// Static NUL-terminated description, shared by `osw_result_text` and error messages.
    pub(crate) fn text(self) -> &'static CStr {
        // The compile-time check above makes the lookup total; the fallback only keeps this
        // free of a panic path.
        RESULT_TEXTS
            .get(self as usize)
            .map_or(UNKNOWN_RESULT_TEXT, |(_, text)| *text)
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

pub(crate) fn set_last_error(message: String) {
    tracing::debug!(%message, "C ABI call failed");
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
}

/// Copies `text` plus a NUL into `buf` if it fits; returns the size including the NUL.
///
/// # Safety
/// `buf` must be NULL or point to `len` writable bytes.
pub(crate) unsafe fn copy_c_string(text: &str, buf: *mut c_char, len: usize) -> (usize, bool) {
    let needed = text.len() + 1;
    if buf.is_null() || len < needed {
        return (needed, false);
    }
    // SAFETY: `buf` has at least `needed` writable bytes (checked above); the source is a
    // live `&str` that cannot overlap caller memory.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        *buf.add(text.len()) = 0;
    }
    (needed, true)
}

/// Copies the calling thread's last error message (NUL-terminated) into `buf`.
///
/// Returns the length the message needs including the NUL, whether or not it fit; a message
/// that does not fit is not written. Call with `buf = NULL, len = 0` to ask for the size.
/// The message belongs to the last failed call made *on this thread*.
#[unsafe(no_mangle)]
pub extern "C" fn osw_last_error(buf: *mut c_char, len: usize) -> usize {
    ffi_panic_boundary! {
        LAST_ERROR.with(|last| {
            // SAFETY: the caller promises `buf` is NULL or has `len` writable bytes.
            unsafe { copy_c_string(&last.borrow(), buf, len) }.0
        })
    }
}

/// A static, NUL-terminated description of a result code (an `osw_result` value); a number
/// that is no result code gives "unknown result code". Never NULL.
// Takes the integer, not `OswResult`: a C caller can pass any number, and an out-of-range
// value in a Rust enum would be undefined behaviour.
#[unsafe(no_mangle)]
pub extern "C" fn osw_result_text(result: u32) -> *const c_char {
    OswResult::from_code(result)
        .map_or(UNKNOWN_RESULT_TEXT, OswResult::text)
        .as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result_text_of(code: u32) -> &'static CStr {
        // SAFETY: osw_result_text always returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(osw_result_text(code)) }
    }

    #[test]
    fn result_text_matches_c_table() {
        for code in [OswResult::Ok, OswResult::GlError, OswResult::Panic] {
            assert_eq!(result_text_of(code as u32), code.text());
            assert_eq!(OswResult::from_code(code as u32), Some(code));
        }
        assert_eq!(
            OswResult::FrameDropped.text(),
            c"frame dropped: encoder busy"
        );
    }

    #[test]
    fn result_text_names_out_of_range_codes() {
        for code in [OswResult::Panic as u32 + 1, 1000, u32::MAX] {
            assert_eq!(OswResult::from_code(code), None);
            assert_eq!(result_text_of(code), c"unknown result code");
        }
    }

    #[test]
    fn last_error_reports_needed_size_and_copies_when_it_fits() {
        set_last_error("boom".into());
        assert_eq!(osw_last_error(std::ptr::null_mut(), 0), 5);
        let mut small = [0 as c_char; 3];
        assert_eq!(osw_last_error(small.as_mut_ptr(), small.len()), 5);
        assert_eq!(small[0], 0, "nothing written when it does not fit");
        let mut buf = [0 as c_char; 8];
        assert_eq!(osw_last_error(buf.as_mut_ptr(), buf.len()), 5);
        // SAFETY: osw_last_error wrote a NUL-terminated string into buf.
        let text = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
        assert_eq!(text.to_str().unwrap(), "boom");
    }
}
