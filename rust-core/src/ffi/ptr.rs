//! NULL-checked pointer conversions. Each macro returns `OswResult::NullParameter` early, so
//! no exported function dereferences a pointer it has not checked.

/// `&T` from `*const T`, or return `NullParameter`.
macro_rules! try_ref {
    ($ptr:expr, $name:literal) => {{
        let ptr = $ptr;
        if ptr.is_null() {
            $crate::ffi::error::set_last_error(concat!("`", $name, "` is NULL").to_string());
            return $crate::ffi::OswResult::NullParameter;
        }
        // SAFETY: checked non-NULL above; the caller promises it points to a live object
        // created by this library (documented on every exported function).
        unsafe { &*ptr }
    }};
}

/// `&mut T` from `*mut T`, or return `NullParameter`.
macro_rules! try_mut {
    ($ptr:expr, $name:literal) => {{
        let ptr = $ptr;
        if ptr.is_null() {
            $crate::ffi::error::set_last_error(concat!("`", $name, "` is NULL").to_string());
            return $crate::ffi::OswResult::NullParameter;
        }
        // SAFETY: checked non-NULL above; the caller promises exclusive access to a live
        // object for the duration of the call.
        unsafe { &mut *ptr }
    }};
}

/// `&str` from a NUL-terminated C string, or return `NullParameter` / `InvalidArgument`.
macro_rules! try_str {
    ($ptr:expr, $name:literal) => {{
        let ptr = $ptr;
        if ptr.is_null() {
            $crate::ffi::error::set_last_error(concat!("`", $name, "` is NULL").to_string());
            return $crate::ffi::OswResult::NullParameter;
        }
        // SAFETY: checked non-NULL; the caller promises a NUL-terminated string that stays
        // valid for the duration of the call.
        let cstr = unsafe { ::std::ffi::CStr::from_ptr(ptr) };
        match cstr.to_str() {
            Ok(s) => s,
            Err(_) => {
                $crate::ffi::error::set_last_error(
                    concat!("`", $name, "` is not valid UTF-8").to_string(),
                );
                return $crate::ffi::OswResult::InvalidArgument;
            }
        }
    }};
}
