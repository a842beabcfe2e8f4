// The sockets of a splice: checked (or found) by their 4-tuple among this process's fds, and what
// the kernel says about them (cookie, bytes received, bytes written, queued).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moat {

// One end of a TCP connection as Node reports it (addresses as text, v4 or v6).
struct SocketTuple {
  uint8_t local[16];  // v4 mapped
  uint16_t localPort;
  uint8_t remote[16];
  uint16_t remotePort;
};

// Parses "1.2.3.4", "::1" or "::ffff:1.2.3.4" into 16 bytes (v4 mapped); false when invalid.
bool ParseAddress(const std::string& text, uint8_t out[16]);

// A duplicate (close-on-exec) of this process's connected TCP socket with that tuple, found by
// scanning /proc/self/fd; -1 when none matches.
int FindSocket(const SocketTuple& tuple);

// A duplicate (close-on-exec) of `fd` when it is this process's connected TCP socket with that
// tuple; -1 otherwise.
int DupSocket(int fd, const SocketTuple& tuple);

// SO_COOKIE; 0 on failure.
uint64_t SocketCookie(int fd);

// Bytes this socket's peer sent it, since the connection began (a received FIN counts 1).
uint64_t BytesReceived(int fd);

// Bytes written into this socket since the connection began (acked + still queued), read so
// that an ack arriving between the two reads cannot make the sum wrong.
uint64_t BytesWritten(int fd);

// The TCP state (TCP_ESTABLISHED = 1, ...); -1 when unknown.
int TcpState(int fd);

// Received bytes nobody has read yet (SIOCINQ; before the socket enters a sockmap).
int QueuedBytes(int fd);

// Reads everything queued on the socket now (non-blocking) into `out`; false on an error.
bool DrainQueued(int fd, std::vector<uint8_t>* out);

}  // namespace moat
