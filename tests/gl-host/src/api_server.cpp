/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

#include "api_server.h"

#include "api_protocol.h"
#include "websocket_frames.h"
#include "websocket_handshake.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <vector>

namespace glhost {

namespace {

// Larger than anything the orchestrator's proxy passes on (64 KiB a message).
constexpr size_t MaxMessageBytes = 1024 * 1024;
// Answers waiting for a client that does not read; past this it is dropped.
constexpr size_t MaxPendingOutput = 4 * 1024 * 1024;
// OpenSpace serves a handful of GUIs and scripts at once; a few more than that is plenty.
constexpr size_t MaxClients = 16;

struct Client {
    explicit Client(int socket) : fd(socket), reader(MaxMessageBytes) {}

    int fd;
    // Until the handshake is done: the request bytes so far.
    bool upgraded = false;
    std::string head;
    ws::MessageReader reader;
    // What the JSON API protocol knows of this client (its handshake)
    api::Connection api;
    // Bytes still to send.
    std::string out;
    // Set once a close frame or an HTTP error is queued: send it, then close.
    bool closeAfterFlush = false;
    bool gone = false;
};

std::string errnoText(const char* what) {
    return std::string(what) + ": " + std::strerror(errno);
}

void queueClose(Client& client, uint16_t code, std::string_view reason) {
    client.out += ws::encodeFrame(ws::Opcode::Close, ws::closePayload(code, reason));
    client.closeAfterFlush = true;
}

void handleText(Client& client, const std::string& text, const ApiServer::ScriptHook& hook) {
    const api::Handled handled = api::handleMessage(text, client.api);
    if (handled.script && hook) {
        hook(*handled.script);
    }
    if (!handled.problem.empty()) {
        std::fprintf(stderr, "osw-gl-host: api: %s\n", handled.problem.c_str());
    }
    if (handled.answer) {
        client.out += ws::encodeFrame(ws::Opcode::Text, *handled.answer);
    }
    if (handled.close) {
        queueClose(client, 1002, "Unsupported API version");
    }
}

// Everything complete in what the client sent: frames after the handshake.
void drainFrames(Client& client, const ApiServer::ScriptHook& hook) {
    while (!client.closeAfterFlush) {
        ws::ReadEvent event = client.reader.next();
        switch (event.status) {
            case ws::ReadStatus::NeedMore:
                return;
            case ws::ReadStatus::Failed:
                std::fprintf(stderr, "osw-gl-host: api: closing a connection: %s\n",
                    event.reason.c_str());
                queueClose(client, event.closeCode, event.reason);
                return;
            case ws::ReadStatus::Control:
                if (event.opcode == ws::Opcode::Ping) {
                    client.out += ws::encodeFrame(ws::Opcode::Pong, event.payload);
                }
                else if (event.opcode == ws::Opcode::Close) {
                    // Section 5.5.1: answer with a close frame, echoing the code.
                    client.out += ws::encodeFrame(ws::Opcode::Close,
                        event.payload.substr(0, std::min<size_t>(2, event.payload.size())));
                    client.closeAfterFlush = true;
                }
                break;
            case ws::ReadStatus::Message:
                if (event.opcode == ws::Opcode::Text) {
                    handleText(client, event.payload, hook);
                }
                else {
                    std::fprintf(stderr, "osw-gl-host: api: ignored a binary message "
                        "(the JSON API is text)\n");
                }
                break;
        }
    }
}

void received(Client& client, std::string_view bytes, const ApiServer::ScriptHook& hook) {
    if (client.upgraded) {
        client.reader.append(bytes);
        drainFrames(client, hook);
        return;
    }
    client.head += bytes;
    const ws::HeadResult head = ws::parseRequestHead(client.head);
    switch (head.status) {
        case ws::HeadStatus::Incomplete:
            return;
        case ws::HeadStatus::Invalid:
            client.out += ws::badRequestResponse(head.error);
            client.closeAfterFlush = true;
            return;
        case ws::HeadStatus::Upgrade:
            client.out += ws::switchingProtocolsResponse(head.key);
            client.upgraded = true;
            // Frames may follow the head in the same read.
            client.reader.append(std::string_view(client.head).substr(head.headBytes));
            client.head.clear();
            drainFrames(client, hook);
            return;
    }
}

void readFrom(Client& client, const ApiServer::ScriptHook& hook) {
    char buffer[65536];
    while (!client.gone && !client.closeAfterFlush) {
        const ssize_t n = ::recv(client.fd, buffer, sizeof(buffer), 0);
        if (n > 0) {
            received(client, std::string_view(buffer, static_cast<size_t>(n)), hook);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return;
        }
        client.gone = true; // closed by the peer, or an error
    }
}

void writeTo(Client& client) {
    while (!client.gone && !client.out.empty()) {
        // MSG_NOSIGNAL: a peer that went away must not kill the host with SIGPIPE.
        const ssize_t n = ::send(client.fd, client.out.data(), client.out.size(),
            MSG_NOSIGNAL);
        if (n > 0) {
            client.out.erase(0, static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            break;
        }
        client.gone = true;
    }
    if (client.out.empty() && client.closeAfterFlush) {
        client.gone = true;
    }
    if (client.out.size() > MaxPendingOutput) {
        std::fprintf(stderr, "osw-gl-host: api: dropping a client that does not read\n");
        client.gone = true;
    }
}

} // namespace

std::unique_ptr<ApiServer> ApiServer::start(uint16_t port, ScriptHook onScript,
                                            std::string& error)
{
    std::unique_ptr<ApiServer> server(new ApiServer());
    server->_onScript = std::move(onScript);

    server->_listenFd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (server->_listenFd < 0) {
        error = errnoText("socket");
        return nullptr;
    }
    const int one = 1;
    ::setsockopt(server->_listenFd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    // Loopback only: the orchestrator's web role, on this machine, is its one client.
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(server->_listenFd, reinterpret_cast<sockaddr*>(&address),
               sizeof(address)) != 0)
    {
        error = errnoText(("cannot listen on 127.0.0.1:" + std::to_string(port)).c_str());
        return nullptr;
    }
    if (::listen(server->_listenFd, 16) != 0) {
        error = errnoText("listen");
        return nullptr;
    }
    socklen_t length = sizeof(address);
    if (::getsockname(server->_listenFd, reinterpret_cast<sockaddr*>(&address),
                      &length) != 0)
    {
        error = errnoText("getsockname");
        return nullptr;
    }
    server->_port = ntohs(address.sin_port);

    int wake[2];
    if (::pipe2(wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        error = errnoText("pipe");
        return nullptr;
    }
    server->_wakeRead = wake[0];
    server->_wakeWrite = wake[1];

    // Signals stay with the main thread, whose loop checks for them between frames: the
    // thread starts with SIGINT and SIGTERM blocked and inherits that mask.
    sigset_t blocked;
    sigset_t previous;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &blocked, &previous);
    server->_thread = std::thread([s = server.get()] { s->run(); });
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    return server;
}

ApiServer::~ApiServer() {
    if (_thread.joinable()) {
        const char stop = 1;
        // The pipe is non-blocking and read only at the end: one byte always fits.
        [[maybe_unused]] const ssize_t written = ::write(_wakeWrite, &stop, 1);
        _thread.join();
    }
    for (const int fd : { _listenFd, _wakeRead, _wakeWrite }) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
}

void ApiServer::run() {
    std::vector<Client> clients;
    clients.reserve(MaxClients);
    std::vector<pollfd> fds;
    while (true) {
        fds.clear();
        fds.push_back({ _wakeRead, POLLIN, 0 });
        const bool room = clients.size() < MaxClients;
        fds.push_back({ _listenFd, static_cast<short>(room ? POLLIN : 0), 0 });
        for (const Client& client : clients) {
            short events = client.closeAfterFlush ? 0 : POLLIN;
            if (!client.out.empty()) {
                events |= POLLOUT;
            }
            fds.push_back({ client.fd, events, 0 });
        }
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            std::perror("osw-gl-host: api: poll");
            break;
        }
        if (fds[0].revents != 0) {
            break;
        }
        if ((fds[1].revents & POLLIN) != 0) {
            while (clients.size() < MaxClients) {
                const int fd = ::accept4(_listenFd, nullptr, nullptr,
                    SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                    break;
                }
                clients.emplace_back(fd);
            }
        }
        // Clients accepted just now have no entry in `fds` yet: they are polled next time.
        for (size_t i = 0; i + 2 < fds.size(); ++i) {
            Client& client = clients[i];
            const short revents = fds[i + 2].revents;
            if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
                readFrom(client, _onScript);
            }
            writeTo(client);
        }
        for (size_t i = clients.size(); i-- > 0;) {
            if (clients[i].gone) {
                ::close(clients[i].fd);
                clients.erase(clients.begin() + static_cast<std::ptrdiff_t>(i));
            }
        }
    }

    // Going away: a last, best-effort close frame to each client that has a WebSocket.
    for (Client& client : clients) {
        if (client.upgraded && !client.closeAfterFlush) {
            queueClose(client, ws::closecode::GoingAway, "OpenSpace is shutting down");
            writeTo(client);
        }
        ::close(client.fd);
    }
}

} // namespace glhost
