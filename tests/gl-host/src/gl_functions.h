/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___GL_FUNCTIONS___H__
#define __OSW_GL_HOST___GL_FUNCTIONS___H__

// The GL 3.3 core functions the host calls, loaded through glfwGetProcAddress the way
// OpenSpace (glbinding) and rust-core load theirs: nothing is linked against libGL, so
// the host uses whichever GL the context came from. The pointers live in namespace
// glhost, so they never collide with the exported symbols of a libGL that something else
// loaded.

#include <GL/glcorearb.h>

namespace glhost {

#define GLHOST_GL_FUNCTIONS(X)                                                          \
    X(PFNGLATTACHSHADERPROC, glAttachShader)                                            \
    X(PFNGLBINDBUFFERPROC, glBindBuffer)                                                \
    X(PFNGLBINDFRAMEBUFFERPROC, glBindFramebuffer)                                      \
    X(PFNGLBINDTEXTUREPROC, glBindTexture)                                              \
    X(PFNGLBINDVERTEXARRAYPROC, glBindVertexArray)                                      \
    X(PFNGLBLITFRAMEBUFFERPROC, glBlitFramebuffer)                                      \
    X(PFNGLBUFFERDATAPROC, glBufferData)                                                \
    X(PFNGLCHECKFRAMEBUFFERSTATUSPROC, glCheckFramebufferStatus)                        \
    X(PFNGLCLEARPROC, glClear)                                                          \
    X(PFNGLCLEARCOLORPROC, glClearColor)                                                \
    X(PFNGLCOMPILESHADERPROC, glCompileShader)                                          \
    X(PFNGLCREATEPROGRAMPROC, glCreateProgram)                                          \
    X(PFNGLCREATESHADERPROC, glCreateShader)                                            \
    X(PFNGLDELETEBUFFERSPROC, glDeleteBuffers)                                          \
    X(PFNGLDELETEFRAMEBUFFERSPROC, glDeleteFramebuffers)                                \
    X(PFNGLDELETEPROGRAMPROC, glDeleteProgram)                                          \
    X(PFNGLDELETESHADERPROC, glDeleteShader)                                            \
    X(PFNGLDELETETEXTURESPROC, glDeleteTextures)                                        \
    X(PFNGLDELETEVERTEXARRAYSPROC, glDeleteVertexArrays)                                \
    X(PFNGLDISABLEPROC, glDisable)                                                      \
    X(PFNGLDRAWARRAYSPROC, glDrawArrays)                                                \
    X(PFNGLDRAWELEMENTSPROC, glDrawElements)                                            \
    X(PFNGLENABLEPROC, glEnable)                                                        \
    X(PFNGLENABLEVERTEXATTRIBARRAYPROC, glEnableVertexAttribArray)                      \
    X(PFNGLFINISHPROC, glFinish)                                                        \
    X(PFNGLFRAMEBUFFERTEXTURE2DPROC, glFramebufferTexture2D)                            \
    X(PFNGLGENBUFFERSPROC, glGenBuffers)                                                \
    X(PFNGLGENFRAMEBUFFERSPROC, glGenFramebuffers)                                      \
    X(PFNGLGENTEXTURESPROC, glGenTextures)                                              \
    X(PFNGLGENVERTEXARRAYSPROC, glGenVertexArrays)                                      \
    X(PFNGLGETERRORPROC, glGetError)                                                    \
    X(PFNGLGETPROGRAMINFOLOGPROC, glGetProgramInfoLog)                                  \
    X(PFNGLGETPROGRAMIVPROC, glGetProgramiv)                                            \
    X(PFNGLGETSHADERINFOLOGPROC, glGetShaderInfoLog)                                    \
    X(PFNGLGETSHADERIVPROC, glGetShaderiv)                                              \
    X(PFNGLGETSTRINGPROC, glGetString)                                                  \
    X(PFNGLGETUNIFORMLOCATIONPROC, glGetUniformLocation)                                \
    X(PFNGLLINKPROGRAMPROC, glLinkProgram)                                              \
    X(PFNGLPIXELSTOREIPROC, glPixelStorei)                                              \
    X(PFNGLREADBUFFERPROC, glReadBuffer)                                                \
    X(PFNGLREADPIXELSPROC, glReadPixels)                                                \
    X(PFNGLSCISSORPROC, glScissor)                                                      \
    X(PFNGLSHADERSOURCEPROC, glShaderSource)                                            \
    X(PFNGLTEXIMAGE2DPROC, glTexImage2D)                                                \
    X(PFNGLTEXPARAMETERIPROC, glTexParameteri)                                          \
    X(PFNGLUNIFORM1FPROC, glUniform1f)                                                  \
    X(PFNGLUNIFORM3FPROC, glUniform3f)                                                  \
    X(PFNGLUNIFORMMATRIX4FVPROC, glUniformMatrix4fv)                                    \
    X(PFNGLUSEPROGRAMPROC, glUseProgram)                                                \
    X(PFNGLVERTEXATTRIBPOINTERPROC, glVertexAttribPointer)                              \
    X(PFNGLVIEWPORTPROC, glViewport)

#define GLHOST_DECLARE_GL_FUNCTION(type, name) extern type name;
GLHOST_GL_FUNCTIONS(GLHOST_DECLARE_GL_FUNCTION)
#undef GLHOST_DECLARE_GL_FUNCTION

// Resolves every function with the current context; returns the name of the first one
// missing, or nullptr when all were found.
const char* loadGlFunctions();

} // namespace glhost

#endif // __OSW_GL_HOST___GL_FUNCTIONS___H__
