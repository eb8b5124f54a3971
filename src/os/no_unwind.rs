//! Stand-ins for libunwind's entry points in the static release build.
//!
//! tether is built with `panic = "abort"`: nothing unwinds. The unwind
//! tables are dropped at link time (`.cargo/static.ld`), so libunwind could
//! not walk a stack anyway; what still referenced it is the standard
//! library's backtrace printer (a panic message's frames) and its
//! precompiled personality routine, neither of which can run to any use.
//! Defining the symbols they name here keeps the linker from pulling in
//! libunwind itself (43 KB, measured: docs/design.md, "Size"). A backtrace
//! is empty ([`_Unwind_Backtrace`] reports the end of the stack at once);
//! the rest abort, as a panic does.
//!
//! Only for `target_env = "musl"` with `panic = "abort"`: a build that
//! unwinds needs the real library, and glibc builds use the system's. Not
//! on 32-bit ARM either: its EHABI unwinder has other entry points, so the
//! linker takes libunwind there anyway and these would clash with it.

#![allow(non_snake_case)]

use std::ffi::c_void;

/// `_URC_END_OF_STACK`.
const END_OF_STACK: i32 = 5;

#[no_mangle]
extern "C" fn _Unwind_Backtrace(_trace: *const c_void, _arg: *mut c_void) -> i32 {
    END_OF_STACK
}

#[no_mangle]
extern "C" fn _Unwind_GetIP(_ctx: *mut c_void) -> usize {
    0
}

#[no_mangle]
extern "C" fn _Unwind_GetIPInfo(_ctx: *mut c_void, before: *mut i32) -> usize {
    if !before.is_null() {
        // SAFETY: the caller passes a valid out-pointer (never called: no
        // frame is ever reported).
        unsafe { *before = 0 };
    }
    0
}

#[no_mangle]
extern "C" fn _Unwind_GetDataRelBase(_ctx: *mut c_void) -> usize {
    0
}

#[no_mangle]
extern "C" fn _Unwind_GetTextRelBase(_ctx: *mut c_void) -> usize {
    0
}

#[no_mangle]
extern "C" fn _Unwind_GetLanguageSpecificData(_ctx: *mut c_void) -> usize {
    0
}

#[no_mangle]
extern "C" fn _Unwind_GetRegionStart(_ctx: *mut c_void) -> usize {
    0
}

#[no_mangle]
extern "C" fn _Unwind_SetGR(_ctx: *mut c_void, _reg: i32, _value: usize) {
    std::process::abort()
}

#[no_mangle]
extern "C" fn _Unwind_SetIP(_ctx: *mut c_void, _value: usize) {
    std::process::abort()
}

#[no_mangle]
extern "C" fn _Unwind_Resume(_exception: *mut c_void) -> ! {
    std::process::abort()
}
