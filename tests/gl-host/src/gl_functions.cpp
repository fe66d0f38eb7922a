/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "gl_functions.h"

#define GLFW_INCLUDE_NONE
#include <GLFW/glfw3.h>

namespace glhost {

#define GLHOST_DEFINE_GL_FUNCTION(type, name) type name = nullptr;
GLHOST_GL_FUNCTIONS(GLHOST_DEFINE_GL_FUNCTION)
#undef GLHOST_DEFINE_GL_FUNCTION

const char* loadGlFunctions() {
#define GLHOST_LOAD_GL_FUNCTION(type, name)                                              \
    name = reinterpret_cast<type>(glfwGetProcAddress(#name));                           \
    if (name == nullptr) {                                                              \
        return #name;                                                                   \
    }
    GLHOST_GL_FUNCTIONS(GLHOST_LOAD_GL_FUNCTION)
#undef GLHOST_LOAD_GL_FUNCTION
    return nullptr;
}

} // namespace glhost
