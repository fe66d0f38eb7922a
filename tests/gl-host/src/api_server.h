/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#ifndef __OSW_GL_HOST___API_SERVER___H__
#define __OSW_GL_HOST___API_SERVER___H__

// A stand-in for OpenSpace's JSON API WebSocket server (the `server` module's WebSocket
// interface, port OSW_API_WEBSOCKET_PORT): a minimal RFC 6455 server on 127.0.0.1 that
// answers `luascript` calls the way OpenSpace does (api_protocol.h), so the orchestrator's
// proxy for that API can be tested without OpenSpace.
//
// It runs on its own thread with poll(2) over non-blocking sockets, so the render loop
// never waits for it. A client that stops reading is dropped once its unsent answers pass
// a limit; so is any client past the limit of open connections.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace glhost {

class ApiServer {
public:
    // Called on the server's thread with each script a client asked to run.
    using ScriptHook = std::function<void(const std::string& script)>;

    // Listens on 127.0.0.1:`port` (0: any free port) and starts the thread. On failure
    // returns nullptr and the reason in `error`.
    static std::unique_ptr<ApiServer> start(uint16_t port, ScriptHook onScript,
                                            std::string& error);

    // Tells open connections the server is going away (close 1001), stops the thread and
    // closes every socket.
    ~ApiServer();

    ApiServer(const ApiServer&) = delete;
    ApiServer& operator=(const ApiServer&) = delete;

    // The port it listens on (the one picked, when asked for 0).
    uint16_t port() const { return _port; }

private:
    ApiServer() = default;

    void run();

    int _listenFd = -1;
    // Writing a byte here wakes the thread to stop.
    int _wakeRead = -1;
    int _wakeWrite = -1;
    uint16_t _port = 0;
    ScriptHook _onScript;
    std::thread _thread;
};

} // namespace glhost

#endif // __OSW_GL_HOST___API_SERVER___H__
