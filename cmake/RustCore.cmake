# OpenSpace WebRTC: CMake glue that builds rust-core with cargo. MIT license.
#
# Builds the `openspace-webrtc-core` crate (a Rust `staticlib`) with cargo and exposes it
# as the IMPORTED static library target `OpenSpaceWebRtc::core`, which carries the C ABI's
# include directory (`rust-core/include`) and every system library the Rust code needs
# (GStreamer through pkg-config, threads, dl, m). Linking that one target is all a
# consumer does; the test host (`tests/gl-host/`) and the OpenSpace module
# (`openspace-module/`) both use it the same way:
#
#     include(<repo>/cmake/RustCore.cmake)
#     openspace_webrtc_add_core()                # or with options, see below
#     target_link_libraries(my-target PRIVATE OpenSpaceWebRtc::core)
#
# openspace_webrtc_add_core([REPO_ROOT <dir>] [PROFILE debug|release]
#                           [PREBUILT <archive>] [CARGO_ARGS <arg>...])
#
#   REPO_ROOT   the workspace root (holds `Cargo.toml` and `rust-core/`). Defaults to the
#               cache variable OSW_REPO_ROOT, which defaults to the parent of this file's
#               folder; set it when this file is copied elsewhere.
#   PROFILE     cargo profile. Defaults to OSW_RUST_PROFILE if set, otherwise `release`
#               for the Release, RelWithDebInfo and MinSizeRel configurations and `debug`
#               for the others (per configuration under multi-config generators).
#   PREBUILT    link this already built archive instead of running cargo (a packaged
#               build, or a machine without Rust). Defaults to OSW_RUST_CORE_PREBUILT.
#               The include directory still comes from REPO_ROOT: the archive and the
#               committed header must be of the same revision.
#   CARGO_ARGS  extra arguments for `cargo build` (for example `--features ...`).
#
# Cargo runs on every build: it is itself incremental and is the only tool that knows
# every input of the crate (sources, build scripts, Cargo.lock, features), so a second
# list of Rust sources in CMake would only go stale. A build with nothing to do costs a
# fraction of a second, and the archive keeps its timestamp, so nothing relinks.
#
# The target directory is `<repo>/target`, shared with plain `cargo build`, so CMake
# builds and cargo's own tests reuse each other's work.
#
# Calling the function more than once is harmless: the first call defines the target.
#
# Linux only. rust-core loads GL through dlopen and shares contexts through GLX or EGL; it
# has no WGL path, so a Windows or macOS configure stops here with that reason instead of
# failing later in cargo.

include_guard(GLOBAL)

if (NOT CMAKE_SYSTEM_NAME STREQUAL "Linux")
    message(FATAL_ERROR
        "OpenSpace WebRTC supports Linux only (this is ${CMAKE_SYSTEM_NAME}): rust-core "
        "loads GL with dlopen and shares the host's context through GLX or EGL, and has no "
        "WGL or CGL path. See openspace-module/README.md, \"Platforms\".")
endif ()

# The repository root as seen from this file: cmake/ sits directly inside it.
get_filename_component(_osw_default_repo_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
set(OSW_REPO_ROOT "${_osw_default_repo_root}" CACHE PATH
    "Root of the OpenSpace WebRTC repository (holds Cargo.toml and rust-core/)")
set(OSW_RUST_PROFILE "" CACHE STRING
    "Cargo profile for rust-core (debug or release); empty follows the build type")
set(OSW_RUST_CORE_PREBUILT "" CACHE FILEPATH
    "A prebuilt rust-core archive to link instead of building it with cargo")

# The GStreamer (and GLib) libraries whose C API the Rust bindings call. The gtk-rs and
# gstreamer-rs `*-sys` crates only tell rustc what to link; a staticlib carries no link
# flags, so the final link must name them all. gio-2.0 is there for glib-rs, which
# refers to GIO symbols. When a dependency adds one, this shows the full list:
#     cat target/debug/build/*-sys-*/output | grep rustc-link-lib
set(OSW_GSTREAMER_MODULES
    gio-2.0
    gstreamer-1.0
    gstreamer-app-1.0
    gstreamer-video-1.0
    gstreamer-gl-1.0
    gstreamer-gl-egl-1.0
    gstreamer-gl-x11-1.0
    gstreamer-webrtc-1.0
    gstreamer-sdp-1.0
    # gst-plugins-rs's RTP plugin (rtpgccbwe, linked in statically) calls these.
    gstreamer-rtp-1.0
    gstreamer-net-1.0
    gstreamer-audio-1.0
)

# Finds pkg-config and the GStreamer modules and defines the GLOBAL imported target
# PkgConfig::OSW_GSTREAMER. Fails the configure step with a message naming what is
# missing.
function(_osw_find_gstreamer)
    if (TARGET PkgConfig::OSW_GSTREAMER)
        return()
    endif ()

    find_package(PkgConfig QUIET)
    if (NOT PKG_CONFIG_FOUND)
        message(FATAL_ERROR
            "OpenSpace WebRTC: pkg-config was not found; it is needed to locate "
            "GStreamer. "
            "Install it (Debian: apt-get install pkg-config) or set "
            "PKG_CONFIG_EXECUTABLE.")
    endif ()

    # Probe each module on its own so the error names exactly the ones missing.
    set(_missing "")
    foreach (_module IN LISTS OSW_GSTREAMER_MODULES)
        string(MAKE_C_IDENTIFIER "_OSW_PROBE_${_module}" _probe)
        pkg_check_modules(${_probe} QUIET ${_module})
        if (NOT ${_probe}_FOUND)
            list(APPEND _missing ${_module})
        endif ()
    endforeach ()
    if (_missing)
        list(JOIN _missing ", " _missing_text)
        message(FATAL_ERROR
            "OpenSpace WebRTC: pkg-config cannot find these GStreamer modules: "
            "${_missing_text}. Install the GStreamer 1.22+ development files (Debian: "
            "libglib2.0-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev "
            "libgstreamer-plugins-bad1.0-dev) or point PKG_CONFIG_PATH at their .pc "
            "files.")
    endif ()

    pkg_check_modules(OSW_GSTREAMER REQUIRED IMPORTED_TARGET GLOBAL
        ${OSW_GSTREAMER_MODULES})
endfunction()

# Locates cargo, looking past PATH into rustup's default install, because IDEs and CI
# runners often start CMake without ~/.cargo/bin on PATH.
function(_osw_find_cargo out_var)
    find_program(OSW_CARGO_EXECUTABLE cargo
        HINTS
            "$ENV{CARGO_HOME}/bin"
            "$ENV{HOME}/.cargo/bin"
            "$ENV{USERPROFILE}/.cargo/bin"
        DOC "cargo, used to build rust-core")
    if (NOT OSW_CARGO_EXECUTABLE)
        message(FATAL_ERROR
            "OpenSpace WebRTC: cargo was not found. Install a Rust toolchain (rustup, "
            "Rust 1.95 or newer) or set OSW_CARGO_EXECUTABLE to the cargo program.")
    endif ()
    set(${out_var} "${OSW_CARGO_EXECUTABLE}" PARENT_SCOPE)
endfunction()

# Defines OpenSpaceWebRtc::core as the archive that `cargo build` leaves in
# <root>/target/<profile>/, with the custom target openspace_webrtc_cargo that runs cargo.
function(_osw_add_cargo_build root profile cargo_args)
    _osw_find_cargo(_cargo)

    set(_target_dir "${root}/target")
    # cargo names the archive after the crate's [lib] name.
    set(_archive "libopenspace_webrtc.a")

    # The configurations whose profile is `release`; every other one builds `debug`. cargo
    # has no RelWithDebInfo: its release profile keeps line tables (debug = 1 in the
    # workspace Cargo.toml), which is what RelWithDebInfo is used for.
    set(_release_configs Release RelWithDebInfo MinSizeRel)

    get_property(_multi_config GLOBAL PROPERTY GENERATOR_IS_MULTI_CONFIG)
    if (profile)
        set(_profile_expr "${profile}")
    elseif (_multi_config)
        list(JOIN _release_configs "," _release_list)
        set(_profile_expr "$<IF:$<CONFIG:${_release_list}>,release,debug>")
    elseif (CMAKE_BUILD_TYPE IN_LIST _release_configs)
        set(_profile_expr "release")
    else ()
        set(_profile_expr "debug")
    endif ()

    # `--release` for release; cargo's debug profile is the default and takes no flag
    # (`--profile debug` is refused: that profile's real name is `dev`).
    set(_profile_flag "$<$<STREQUAL:${_profile_expr},release>:--release>")
    set(_archive_path "${_target_dir}/${_profile_expr}/${_archive}")

    add_custom_target(openspace_webrtc_cargo
        COMMAND "${_cargo}" build
            --manifest-path "${root}/Cargo.toml"
            --package openspace-webrtc-core
            --lib
            --target-dir "${_target_dir}"
            ${_profile_flag}
            ${cargo_args}
        WORKING_DIRECTORY "${root}"
        BYPRODUCTS "${_archive_path}"
        COMMENT "Building rust-core with cargo (${_profile_expr})"
        USES_TERMINAL
        COMMAND_EXPAND_LISTS
        VERBATIM
    )
    set_property(TARGET openspace_webrtc_cargo PROPERTY FOLDER "OpenSpaceWebRtc")

    add_library(OpenSpaceWebRtc::core STATIC IMPORTED GLOBAL)
    if (_multi_config AND NOT profile)
        foreach (_config IN LISTS CMAKE_CONFIGURATION_TYPES)
            string(TOUPPER "${_config}" _config_upper)
            if (_config IN_LIST _release_configs)
                set(_location "${_target_dir}/release/${_archive}")
            else ()
                set(_location "${_target_dir}/debug/${_archive}")
            endif ()
            set_property(TARGET OpenSpaceWebRtc::core APPEND PROPERTY
                IMPORTED_CONFIGURATIONS "${_config_upper}")
            set_property(TARGET OpenSpaceWebRtc::core PROPERTY
                "IMPORTED_LOCATION_${_config_upper}" "${_location}")
        endforeach ()
    else ()
        set_property(TARGET OpenSpaceWebRtc::core PROPERTY
            IMPORTED_LOCATION "${_archive_path}")
    endif ()
    # An imported target cannot build itself: linking it makes the consumer wait for
    # cargo.
    add_dependencies(OpenSpaceWebRtc::core openspace_webrtc_cargo)

    if (_multi_config AND NOT profile)
        set(_profile_text "release for ${_release_list}, otherwise debug")
    else ()
        set(_profile_text "${_profile_expr}")
    endif ()
    message(STATUS "OpenSpace WebRTC: rust-core built by cargo from ${root} "
        "(${_cargo}, profile: ${_profile_text})")
endfunction()

function(openspace_webrtc_add_core)
    if (TARGET OpenSpaceWebRtc::core)
        return()
    endif ()

    cmake_parse_arguments(PARSE_ARGV 0 ARG "" "REPO_ROOT;PROFILE;PREBUILT" "CARGO_ARGS")
    if (ARG_UNPARSED_ARGUMENTS)
        message(FATAL_ERROR
            "openspace_webrtc_add_core: unknown arguments: ${ARG_UNPARSED_ARGUMENTS}")
    endif ()

    set(_root "${OSW_REPO_ROOT}")
    if (ARG_REPO_ROOT)
        get_filename_component(_root "${ARG_REPO_ROOT}" ABSOLUTE)
    endif ()
    if (NOT EXISTS "${_root}/rust-core/include/openspace_webrtc.h")
        message(FATAL_ERROR
            "OpenSpace WebRTC: '${_root}' is not the repository root (no "
            "rust-core/include/openspace_webrtc.h there). Set OSW_REPO_ROOT or pass "
            "REPO_ROOT.")
    endif ()

    set(_profile "${OSW_RUST_PROFILE}")
    if (ARG_PROFILE)
        set(_profile "${ARG_PROFILE}")
    endif ()
    if (_profile AND NOT _profile MATCHES "^(debug|release)$")
        message(FATAL_ERROR
            "OpenSpace WebRTC: the rust-core profile must be debug or release, "
            "not '${_profile}'")
    endif ()

    set(_prebuilt "${OSW_RUST_CORE_PREBUILT}")
    if (ARG_PREBUILT)
        set(_prebuilt "${ARG_PREBUILT}")
    endif ()

    # GStreamer first: its absence is the likelier problem and needs no Rust to report.
    _osw_find_gstreamer()

    if (_prebuilt)
        if (NOT EXISTS "${_prebuilt}")
            message(FATAL_ERROR
                "OpenSpace WebRTC: the prebuilt rust-core archive '${_prebuilt}' does "
                "not exist")
        endif ()
        add_library(OpenSpaceWebRtc::core STATIC IMPORTED GLOBAL)
        set_property(TARGET OpenSpaceWebRtc::core PROPERTY
            IMPORTED_LOCATION "${_prebuilt}")
        message(STATUS "OpenSpace WebRTC: rust-core prebuilt: ${_prebuilt}")
    else ()
        if (NOT EXISTS "${_root}/Cargo.toml")
            message(FATAL_ERROR
                "OpenSpace WebRTC: no Cargo.toml in '${_root}' to build rust-core from")
        endif ()
        _osw_add_cargo_build("${_root}" "${_profile}" "${ARG_CARGO_ARGS}")
    endif ()

    # The system libraries Rust's standard library and our dependencies need in a static
    # link (`cargo rustc -p openspace-webrtc-core -- --print native-static-libs` lists
    # them).
    find_package(Threads REQUIRED)
    # Empty stubs since glibc 2.34, but real libraries in older ones.
    set(_system_libs Threads::Threads ${CMAKE_DL_LIBS} m rt util)

    set_target_properties(OpenSpaceWebRtc::core PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${_root}/rust-core/include"
        INTERFACE_LINK_LIBRARIES "PkgConfig::OSW_GSTREAMER;${_system_libs}"
    )
endfunction()
