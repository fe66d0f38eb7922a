/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___CHECK___H__
#define __OSW_GL_HOST___CHECK___H__

// A minimal check macro: the host's unit tests are small enough not to need a framework,
// and the host should build from GLFW and rust-core alone.

#include <cstdio>

namespace check {
inline int failures = 0;
} // namespace check

#define CHECK(condition)                                                                \
    do {                                                                                \
        if (!(condition)) {                                                             \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,       \
                #condition);                                                            \
            ++check::failures;                                                          \
        }                                                                               \
    } while (false)

// The test's exit code: nonzero when any check failed.
#define CHECK_RESULT() check::result()

namespace check {
inline int result() {
    if (failures == 0) {
        std::puts("all checks passed");
        return 0;
    }
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
}
} // namespace check

#endif // __OSW_GL_HOST___CHECK___H__
