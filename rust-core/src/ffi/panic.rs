//! Keeps panics from unwinding into C.

/// Value an exported function returns when its body panicked.
pub(crate) trait PanicOrDefault {
    fn value() -> Self;
}

impl PanicOrDefault for super::OswResult {
    fn value() -> Self {
        super::OswResult::Panic
    }
}

impl PanicOrDefault for bool {
    fn value() -> Self {
        false
    }
}

impl PanicOrDefault for u16 {
    fn value() -> Self {
        0
    }
}

impl PanicOrDefault for usize {
    fn value() -> Self {
        0
    }
}

impl PanicOrDefault for () {
    fn value() -> Self {}
}

impl PanicOrDefault for *const std::ffi::c_char {
    fn value() -> Self {
        std::ptr::null()
    }
}

/// Runs `$body` and turns a panic into the function's [`PanicOrDefault`] value, recording the
/// panic message as the thread's last error.
macro_rules! ffi_panic_boundary {
    ($($body:tt)*) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(value) => value,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                $crate::ffi::error::set_last_error(format!("internal panic: {message}"));
                $crate::ffi::panic::PanicOrDefault::value()
            }
        }
    };
}
