/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___APP_REQUESTS___H__
#define __OSW_GL_HOST___APP_REQUESTS___H__

// The owner's requests from the `app` data channel, answered the way the OpenSpace module
// answers them: a script is "run" (printed on stdout, which the tests read), a view moves
// the camera to a named pose. The host's status lists those views for the page.

#include "camera.h"
#include "streamer.h"

#include <string>

namespace glhost {

// The status published once the streamer exists: the views `goToView` knows.
std::string appStatusJson();

// Answers every app request waiting. Returns true when a view moved the camera.
bool handleAppRequests(Streamer& streamer, Camera& camera);

} // namespace glhost

#endif // __OSW_GL_HOST___APP_REQUESTS___H__
