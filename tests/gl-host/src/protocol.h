/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___PROTOCOL___H__
#define __OSW_GL_HOST___PROTOCOL___H__

// The machine-readable lines the host writes to stdout for the test harness (README.md
// lists them). Each line is flushed at once: the harness reacts to them while the host
// runs, and stdout is a pipe there, which the C library would otherwise buffer.
// Everything meant for people goes to stderr instead.

#include "frame_cost.h"

#include <cstdint>
#include <string>

namespace glhost::protocol {

void ready(uint16_t port);
void camera(float yaw, float pitch, float distance);
void resize(int width, int height);
void viewerJoined(uint32_t viewerId);
void viewerLeft(uint32_t viewerId);
void stats(const std::string& json);
void frameCost(const FrameCost& cost);
void stripCheck(bool ok, long long frames, long long failures);
// The JSON API stand-in listens (api_server.h).
void apiListening(uint16_t port);
// The JSON API stand-in was asked to run `script` (written on one line, api_protocol.h's
// oneLine). Called from the stand-in's thread: lines are whole whichever thread writes.
void apiRan(const std::string& script);
// Viewer `viewerId` ran `script` over the app channel (written on one line).
void appScript(uint32_t viewerId, const std::string& script);
// Viewer `viewerId` flew to the view `name` over the app channel.
void appView(uint32_t viewerId, const std::string& name);
// The controls went to `viewerId` (0: nobody).
void controls(uint32_t viewerId);
// Frame `frame` carries a tone (tone.h); `unixMs` is its strip's time, when the tone's
// first sample was handed over.
void tone(long long frame, uint64_t unixMs);

} // namespace glhost::protocol

#endif // __OSW_GL_HOST___PROTOCOL___H__
