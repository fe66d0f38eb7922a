/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___INPUT___H__
#define __OSW_GL_HOST___INPUT___H__

// Applies the events rust-core queued (browser input, control requests, viewers coming
// and going) on the main thread, the way the OpenSpace module feeds them to
// OpenSpaceEngine in preSync.

#include "camera.h"

#include <openspace_webrtc.h>

namespace glhost {

// What one frame's events asked for.
struct InputOutcome {
    bool cameraChanged = false;
    // A framebuffer size a viewer or the orchestrator asked for (0 = none). The last
    // request of the frame wins.
    int requestedWidth = 0;
    int requestedHeight = 0;
};

// Applies `event` to `camera` and `outcome`; viewer events are reported on stdout.
// Pointer coordinates come in the viewer's displayed video size (event.width x
// event.height) and are scaled to the framebuffer, `fbWidth` x `fbHeight`.
void applyEvent(const osw_event& event, int fbWidth, int fbHeight, Camera& camera,
                InputOutcome& outcome);

} // namespace glhost

#endif // __OSW_GL_HOST___INPUT___H__
