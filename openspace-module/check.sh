#!/usr/bin/env bash
# OpenSpace WebRTC: checks the OpenSpace module's sources without OpenSpace and without a
# network. MIT license.
#
#     openspace-module/check.sh [MODULE_DIR]    check MODULE_DIR (default: this folder)
#     openspace-module/check.sh --self-test     prove that each check catches its violation
#
# Checks every C++ file (*.h, *.cpp, *.inl; not the generated *_codegen.cpp):
#   - includes: rust-core's C ABI header <openspace_webrtc.h>, OpenSpace (<openspace/...>,
#     this module's own <modules/webrtc/...>, modules named in include.cmake), Ghoul
#     (<ghoul/...>), GLFW (<GLFW/...>), the C++ standard library, and quoted files next to
#     the including file (or its generated *_codegen.cpp); nothing else, so nothing else
#     from this repository;
#   - OpenSpace's MIT banner at the top;
#   - headers: include guards __OPENSPACE_MODULE_WEBRTC___<FILENAME>___H__ (#ifndef, #define
#     and a closing `#endif // <guard>`);
# and in every C++ and CMake file: at most 90 columns, no TABs, no trailing whitespace. Exits 1 and names each violation; exits 0 when all is well.

set -u

self_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# The C++ standard library headers (C++23), the only angle-bracket names without a path
std_headers=" algorithm any array atomic barrier bit bitset cassert cctype cerrno cfenv
cfloat charconv chrono cinttypes climits clocale cmath codecvt compare complex concepts
condition_variable coroutine csetjmp csignal cstdarg cstddef cstdint cstdio cstdlib cstring
ctime cuchar cwchar cwctype deque exception execution expected filesystem flat_map flat_set
format forward_list fstream functional future generator initializer_list iomanip ios iosfwd
iostream istream iterator latch limits list locale map mdspan memory memory_resource mutex
new numbers numeric optional ostream print queue random ranges ratio regex scoped_allocator
semaphore set shared_mutex source_location span spanstream sstream stack stacktrace
stdexcept stdfloat stop_token streambuf string string_view strstream syncstream
system_error thread tuple type_traits typeindex typeinfo unordered_map unordered_set
utility valarray variant vector version "
std_headers="$(echo "${std_headers}" | tr '\n' ' ')"

# The text of OpenSpace's MIT banner; C++ files box it in /* * */, CMake files in #
banner_text=(
    ""
    "OpenSpace"
    ""
    "Copyright (c) 2014-YEAR"
    ""
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this"
    "software and associated documentation files (the \"Software\"), to deal in the Software"
    "without restriction, including without limitation the rights to use, copy, modify,"
    "merge, publish, distribute, sublicense, and/or sell copies of the Software, and to"
    "permit persons to whom the Software is furnished to do so, subject to the following"
    "conditions:"
    ""
    "The above copyright notice and this permission notice shall be included in all copies"
    "or substantial portions of the Software."
    ""
    "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,"
    "INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A"
    "PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT"
    "HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF"
    "CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE"
    "OR THE USE OR OTHER DEALINGS IN THE SOFTWARE."
)

# banner cpp|cmake: the banner as it opens a file of that kind, 90 columns wide
banner() {
    local stars hashes line
    stars="$(printf '%*s' 88 '' | tr ' ' '*')"
    hashes="$(printf '%*s' 90 '' | tr ' ' '#')"
    if [ "$1" = cpp ]; then
        printf '/*%s\n' "${stars}"
        for line in "${banner_text[@]}"; do
            printf ' * %-85s *\n' "${line}"
        done
        printf ' %s/\n' "${stars}"
    else
        printf '%s\n' "${hashes}"
        for line in "${banner_text[@]}"; do
            printf '# %-86s #\n' "${line}"
        done
        printf '%s\n' "${hashes}"
    fi
}
banner_cpp="$(banner cpp)"
banner_cmake="$(banner cmake)"

failures=0

fail() {
    echo "check.sh: $*" >&2
    failures=$((failures + 1))
}

# check_banner FILE EXPECTED: the file starts with EXPECTED, whose YEAR matches 20NN
check_banner() {
    local file="$1" expected="$2" n
    n="$(printf '%s\n' "${expected}" | wc -l)"
    local actual
    actual="$(head -n "${n}" "${file}" | sed -E 's/2014-20[0-9]{2}/2014-YEAR/')"
    if [ "${actual}" != "${expected}" ]; then
        fail "${file}: does not start with OpenSpace's MIT banner (copy it from an" \
"OpenSpace module, e.g. modules/sync/syncmodule.h or its CMakeLists.txt)"
    fi
}

# check_text FILE: columns, TABs, trailing whitespace
check_text() {
    local file="$1"
    awk -v f="${file}" '
        length($0) > 90 { printf "%s:%d: %d columns, more than 90\n", f, NR, length($0) }
        /\t/ { printf "%s:%d: TAB character\n", f, NR }
        /[ ]+$/ { printf "%s:%d: trailing whitespace\n", f, NR }
    ' "${file}" > "${tmp_out}"
    while IFS= read -r line; do
        fail "${line}"
    done < "${tmp_out}"
}

# check_guard FILE: __OPENSPACE_MODULE_WEBRTC___<NAME>___H__ around the whole header
check_guard() {
    local file="$1" name guard
    name="$(basename "${file}" .h | tr '[:lower:]' '[:upper:]')"
    guard="__OPENSPACE_MODULE_WEBRTC___${name}___H__"
    local ifndef define endif_line
    ifndef="$(grep -m1 -n '^#ifndef ' "${file}")"
    define="$(grep -m1 -n '^#define ' "${file}")"
    endif_line="$(grep -v '^[[:space:]]*$' "${file}" | tail -n 1)"
    if [ "${ifndef#*:}" != "#ifndef ${guard}" ]; then
        fail "${file}: the first #ifndef must be the include guard '#ifndef ${guard}'"
        return
    fi
    if [ "${define#*:}" != "#define ${guard}" ] ||
       [ "${define%%:*}" != "$(( ${ifndef%%:*} + 1 ))" ]; then
        fail "${file}: '#define ${guard}' must follow the #ifndef on the next line"
    fi
    if [ "${endif_line}" != "#endif // ${guard}" ]; then
        fail "${file}: the last line must be '#endif // ${guard}'"
    fi
}

# check_includes FILE MODULE_DIR DEPENDENCIES
check_includes() {
    local file="$1" module_dir="$2" deps="$3"
    local dir stem
    dir="$(dirname "${file}")"
    stem="$(basename "${file}")"
    stem="${stem%.*}"
    grep -n -E '^[[:space:]]*#[[:space:]]*include' "${file}" > "${tmp_out}"
    while IFS= read -r entry; do
        local lineno="${entry%%:*}" text="${entry#*:}" target
        if [[ "${text}" =~ \<([^\>]+)\> ]]; then
            target="${BASH_REMATCH[1]}"
            case "${target}" in
                openspace_webrtc.h) continue ;;
                openspace/*|ghoul/*|GLFW/glfw3.h|GLFW/glfw3native.h) continue ;;
                modules/webrtc/*)
                    if [ -f "${module_dir}/${target#modules/webrtc/}" ]; then
                        continue
                    fi
                    fail "${file}:${lineno}: <${target}> is not a file of this module"
                    continue
                    ;;
                modules/*)
                    local other="${target#modules/}"
                    other="${other%%/*}"
                    if [[ " ${deps} " == *" ${other} "* ]]; then
                        continue
                    fi
                    fail "${file}:${lineno}: <${target}> is from OpenSpace's module" \
"'${other}', which include.cmake does not list in OPENSPACE_DEPENDENCIES"
                    continue
                    ;;
            esac
            if [[ "${target}" != */* && " ${std_headers} " == *" ${target} "* ]]; then
                continue
            fi
            fail "${file}:${lineno}: <${target}> is not allowed: the module may include" \
"only rust-core's C ABI header <openspace_webrtc.h>, OpenSpace, Ghoul, GLFW and C++" \
"standard headers"
        elif [[ "${text}" =~ \"([^\"]+)\" ]]; then
            target="${BASH_REMATCH[1]}"
            if [[ "${target}" != */* && "${target}" != *..* ]]; then
                if [ -f "${dir}/${target}" ]; then
                    continue
                fi
                # Written by OpenSpace's codegen tool from this file or its _lua.inl
                if [[ "${target}" == *_codegen.cpp ]] &&
                   { [ -f "${dir}/${target%_codegen.cpp}.cpp" ] ||
                     [ -f "${dir}/${target%_codegen.cpp}.inl" ]; }; then
                    continue
                fi
            fi
            fail "${file}:${lineno}: \"${target}\" is not allowed: quoted includes must" \
"name a file next to the including file (or its generated *_codegen.cpp)"
        else
            fail "${file}:${lineno}: cannot read this #include: ${text}"
        fi
    done < "${tmp_out}"
}

check_module() {
    local module_dir="$1"
    if [ ! -f "${module_dir}/webrtcmodule.h" ]; then
        echo "check.sh: ${module_dir} is not the WebRtc module (no webrtcmodule.h)" >&2
        return 2
    fi

    # OpenSpace modules this one may depend on, from include.cmake
    local deps=""
    if [ -f "${module_dir}/include.cmake" ]; then
        deps="$(sed -n '/OPENSPACE_DEPENDENCIES/,/)/p' "${module_dir}/include.cmake" |
            sed -e 's/.*OPENSPACE_DEPENDENCIES//' -e 's/[()]//g' | tr '\n' ' ')"
    fi

    local cpp_files cmake_files
    cpp_files="$(find "${module_dir}" -type f \( -name '*.h' -o -name '*.cpp' \
        -o -name '*.inl' \) ! -name '*_codegen.cpp' | sort)"
    cmake_files="$(find "${module_dir}" -type f \( -name 'CMakeLists.txt' \
        -o -name '*.cmake' \) | sort)"
    if [ -z "${cpp_files}" ]; then
        echo "check.sh: no C++ files found in ${module_dir}" >&2
        return 2
    fi

    local file
    for file in ${cpp_files}; do
        check_banner "${file}" "${banner_cpp}"
        check_text "${file}"
        check_includes "${file}" "${module_dir}" "${deps}"
        if [[ "${file}" == *.h ]]; then
            check_guard "${file}"
        fi
    done
    for file in ${cmake_files}; do
        check_banner "${file}" "${banner_cmake}"
        check_text "${file}"
    done
}

self_test() {
    local scratch
    scratch="$(mktemp -d)"
    local status=0
    # Each case: a name and a shell command that breaks the copy in $m
    local cases=(
        "include from rust-core's sources|sed -i '0,/#include <openspace_webrtc.h>/s||#include \"../rust-core/src/gl/mod.h\"|' \$m/webrtcmodule.cpp"
        "include of a GStreamer header|sed -i 's|#include <openspace_webrtc.h>|#include <gst/gst.h>|' \$m/webrtcmodule.cpp"
        "include of another module|sed -i 's|#include <ghoul/format.h>|#include <modules/sync/syncmodule.h>|' \$m/webrtcmodule.cpp"
        "missing banner|sed -i '3d' \$m/webrtcmodule_lua.inl"
        "wrong include guard|sed -i 's/___WEBRTCMODULE___H__/___WEBRTC_MODULE___H__/g' \$m/webrtcmodule.h"
        "closing guard comment|sed -i 's|^#endif // __OPENSPACE_MODULE_WEBRTC___WEBRTCMODULE___H__|#endif|' \$m/webrtcmodule.h"
        "91 columns|printf '// %088d\n' 0 >> \$m/webrtcmodule.cpp"
        "TAB|printf '\tint x;\n' >> \$m/src/backbufferread.cpp"
        "CMake banner|sed -i '5d' \$m/CMakeLists.txt"
    )
    local m="${scratch}/webrtc"
    cp -R "${self_dir}" "${m}"
    if ! "${BASH_SOURCE[0]}" "${m}" > /dev/null 2>&1; then
        echo "check.sh --self-test: the unmodified module does not pass" >&2
        "${BASH_SOURCE[0]}" "${m}" >&2
        rm -rf "${scratch}"
        return 1
    fi
    local entry
    for entry in "${cases[@]}"; do
        local name="${entry%%|*}" command="${entry#*|}"
        rm -rf "${m}"
        cp -R "${self_dir}" "${m}"
        m="${m}" bash -c "m=\"${m}\"; ${command}"
        if "${BASH_SOURCE[0]}" "${m}" > /dev/null 2>&1; then
            echo "check.sh --self-test: FAILED to catch: ${name}" >&2
            status=1
        else
            echo "check.sh --self-test: catches ${name}"
        fi
    done
    rm -rf "${scratch}"
    return "${status}"
}

tmp_out="$(mktemp)"
trap 'rm -f "${tmp_out}"' EXIT

if [ "${1:-}" = "--self-test" ]; then
    self_test
    exit $?
fi

module_dir="${1:-${self_dir}}"
module_dir="$(cd "${module_dir}" && pwd)" || exit 2
check_module "${module_dir}" || exit $?

if [ "${failures}" -ne 0 ]; then
    echo "check.sh: ${failures} violation(s) in the OpenSpace module ${module_dir}" >&2
    exit 1
fi
echo "check.sh: the OpenSpace module in ${module_dir} is clean"
