/*****************************************************************************************
 * OpenSpace WebRTC: GL test host. MIT license.                                          *
 ****************************************************************************************/

// The JSON API stand-in over a real loopback socket: handshake, a luascript call and its
// answer, ping, close, a request that is no upgrade, and the close frame a client gets
// when the host shuts down.

#include "api_server.h"
#include "check.h"
#include "websocket_frames.h"
#include "websocket_handshake.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <utility>
#include <vector>

using namespace glhost;

namespace {

const std::array<uint8_t, 4> Mask = { 1, 2, 3, 4 };

// A blocking client socket with a read deadline, so a broken server fails the test
// instead of hanging it.
class TestClient {
public:
    explicit TestClient(uint16_t port) {
        _fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address = {};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        _connected = ::connect(_fd, reinterpret_cast<sockaddr*>(&address),
                               sizeof(address)) == 0;
    }
    ~TestClient() { ::close(_fd); }

    bool connected() const { return _connected; }

    void send(const std::string& bytes) {
        ::send(_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    }

    // Reads until `buffer` holds `count` bytes; false on EOF or after 5 s.
    bool fill(size_t count) {
        while (_buffer.size() < count) {
            pollfd p = { _fd, POLLIN, 0 };
            if (::poll(&p, 1, 5000) <= 0) {
                return false;
            }
            char chunk[4096];
            const ssize_t n = ::recv(_fd, chunk, sizeof(chunk), 0);
            if (n <= 0) {
                return false;
            }
            _buffer.append(chunk, static_cast<size_t>(n));
        }
        return true;
    }

    // The response head, up to and including the blank line.
    std::string head() {
        while (_buffer.find("\r\n\r\n") == std::string::npos) {
            if (!fill(_buffer.size() + 1)) {
                return {};
            }
        }
        const size_t end = _buffer.find("\r\n\r\n") + 4;
        std::string head = _buffer.substr(0, end);
        _buffer.erase(0, end);
        return head;
    }

    // Everything until the server closes the connection.
    std::string rest() {
        while (fill(_buffer.size() + 1)) {
        }
        return std::exchange(_buffer, {});
    }

    // One server frame (unmasked, unfragmented): opcode and payload; opcode 0xFF on failure.
    std::pair<int, std::string> frame() {
        if (!fill(2)) {
            return { 0xFF, {} };
        }
        const int opcode = static_cast<uint8_t>(_buffer[0]) & 0x0F;
        size_t length = static_cast<uint8_t>(_buffer[1]) & 0x7F;
        size_t header = 2;
        if (length == 126) {
            if (!fill(4)) {
                return { 0xFF, {} };
            }
            length = (static_cast<uint8_t>(_buffer[2]) << 8) | static_cast<uint8_t>(_buffer[3]);
            header = 4;
        }
        if (!fill(header + length)) {
            return { 0xFF, {} };
        }
        std::string payload = _buffer.substr(header, length);
        _buffer.erase(0, header + length);
        return { opcode, payload };
    }

    bool upgrade() {
        send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
        const std::string answer = head();
        return answer.rfind("HTTP/1.1 101 ", 0) == 0 &&
               answer.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") !=
                   std::string::npos;
    }

private:
    int _fd = -1;
    bool _connected = false;
    std::string _buffer;
};

} // namespace

int main() {
    std::mutex mutex;
    std::vector<std::string> scripts;
    std::string error;
    std::unique_ptr<ApiServer> server = ApiServer::start(0, [&](const std::string& script) {
        std::lock_guard<std::mutex> lock(mutex);
        scripts.push_back(script);
    }, error);
    CHECK(server != nullptr);
    if (!server) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return CHECK_RESULT();
    }
    CHECK(server->port() != 0);

    // The port is taken now: a second server on it fails with a reason.
    {
        std::string second;
        CHECK(ApiServer::start(server->port(), nullptr, second) == nullptr);
        CHECK(second.find("cannot listen on 127.0.0.1:") != std::string::npos);
    }

    // A luascript call in two fragments, a ping, then a close.
    {
        TestClient client(server->port());
        CHECK(client.connected());
        CHECK(client.upgrade());
        client.send(ws::encodeMaskedFrame(ws::Opcode::Text,
            R"x({"type":"apiHandshake","apiVersion":{"major":1,"minor":0,"patch":0}})x", Mask));
        const std::string call =
            R"x({"topic":5,"type":"luascript","payload":{"script":"return openspace.version()","return":true}})x";
        client.send(ws::encodeMaskedFrame(ws::Opcode::Text, call.substr(0, 20), Mask, false) +
                    ws::encodeMaskedFrame(ws::Opcode::Continuation, call.substr(20), Mask));
        const auto answer = client.frame();
        CHECK(answer.first == 0x1);
        CHECK(answer.second ==
              R"x({"payload":{"1":"osw-gl-host ran: return openspace.version()"},"topic":5})x");
        {
            std::lock_guard<std::mutex> lock(mutex);
            CHECK(scripts == std::vector<std::string>{ "return openspace.version()" });
        }
        // No return wanted: no answer; the ping's pong is the next frame.
        client.send(ws::encodeMaskedFrame(ws::Opcode::Text,
            R"x({"topic":6,"type":"luascript","payload":{"script":"x = 1"}})x", Mask));
        client.send(ws::encodeMaskedFrame(ws::Opcode::Ping, "are you there", Mask));
        const auto pong = client.frame();
        CHECK(pong.first == 0xA && pong.second == "are you there");
        client.send(ws::encodeMaskedFrame(ws::Opcode::Close, ws::closePayload(1000, "done"),
                                          Mask));
        const auto close = client.frame();
        CHECK(close.first == 0x8 && close.second == ws::closePayload(1000, ""));
        CHECK(client.rest().empty());
        std::lock_guard<std::mutex> lock(mutex);
        CHECK(scripts.size() == 2 && scripts.back() == "x = 1");
    }

    // A call before the API handshake is refused the way OpenSpace refuses it: closed.
    {
        TestClient client(server->port());
        CHECK(client.upgrade());
        client.send(ws::encodeMaskedFrame(ws::Opcode::Text,
            R"x({"topic":1,"type":"luascript","payload":{"script":"y = 2","return":true}})x",
            Mask));
        const auto close = client.frame();
        CHECK(close.first == 0x8 && close.second.size() >= 2 &&
              close.second.substr(0, 2) == ws::closePayload(1002, "").substr(0, 2));
        std::lock_guard<std::mutex> lock(mutex);
        CHECK(scripts.back() != "y = 2");
    }

    // A protocol violation is closed with its code.
    {
        TestClient client(server->port());
        CHECK(client.upgrade());
        client.send(ws::encodeFrame(ws::Opcode::Text, "unmasked"));
        const auto close = client.frame();
        CHECK(close.first == 0x8 && close.second.size() >= 2 &&
              close.second.substr(0, 2) == ws::closePayload(1002, "").substr(0, 2));
    }

    // Plain HTTP gets 400 and the connection closes.
    {
        TestClient client(server->port());
        client.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        CHECK(client.rest().rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
    }

    // Shutting down tells an open client it is going away.
    {
        TestClient client(server->port());
        CHECK(client.upgrade());
        server.reset();
        const auto close = client.frame();
        CHECK(close.first == 0x8 && close.second.substr(0, 2) ==
              ws::closePayload(1001, "").substr(0, 2));
    }

    return CHECK_RESULT();
}
