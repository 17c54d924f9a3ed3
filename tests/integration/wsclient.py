"""wsclient.py - a small WebSocket client on stdlib sockets (RFC 6455), for the tests and
the bench: the handshake, masked frames (or deliberately unmasked and otherwise bad
ones), fragments, pings and the close handshake. Blocking, with a timeout on every
read, loopback only."""

import base64
import hashlib
import os
import socket
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Closed(Exception):
    """The server closed the TCP connection."""


def accept_of(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def handshake_request(path="/", key=None, version="13", extra=""):
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    req = ("GET %s HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n%s\r\n"
           % (path, key, version, extra))
    return req.encode(), key


class WS:
    def __init__(self, port, path="/", timeout=5, first=b""):
        """Connects and handshakes; FIRST (frame bytes) is sent in the same write as
        the handshake, as a client that does not wait for the 101 would."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        req, key = handshake_request(path)
        self.sock.sendall(req + first)
        head = self._read_head()
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.headers = {}
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                self.headers[k.strip().lower()] = v.strip()
        self.status = int(self.status_line.split()[1])
        self.accept_ok = self.headers.get("sec-websocket-accept") == accept_of(key)

    @classmethod
    def attached(cls, sock):
        """A client on SOCK, connected already and not handshaken yet (raw tests)."""
        ws = cls.__new__(cls)
        ws.sock, ws.buf = sock, b""
        return ws

    def read_response(self):
        """(status, headers, body) of one HTTP answer (Content-Length bodies only)."""
        lines = self._read_head().decode("latin-1").split("\r\n")
        hdrs = {}
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        body = self._take(int(hdrs.get("content-length", "0")))
        return int(lines[0].split()[1]), hdrs, body

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise Closed()
        self.buf += d

    def _read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    @staticmethod
    def frame(opcode, payload=b"", fin=True, mask=True, length=None, rsv=0):
        """One frame's bytes; LENGTH overrides the declared payload length."""
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        mbit = 0x80 if mask else 0
        if n < 126:
            hdr = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, mbit | 127, n)
        if not mask:
            return hdr + payload
        key = os.urandom(4)
        mk = (key * (len(payload) // 4 + 1))[:len(payload)]
        m = (int.from_bytes(payload, "big") ^ int.from_bytes(mk, "big")).to_bytes(
            len(payload), "big")
        return hdr + key + m

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, data, opcode=None):
        if opcode is None:
            opcode = TEXT if isinstance(data, str) else BINARY
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(self.frame(opcode, data))

    def recv_frame(self):
        """(fin, opcode, payload) of the next frame; the server's are never masked."""
        b0, b1 = self._take(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        if b1 & 0x80:
            raise AssertionError("the server masked a frame")
        return bool(b0 & 0x80), b0 & 0x0F, self._take(n)

    def recv(self):
        """(opcode, payload) of the next whole message, control frames included."""
        fin, op, data = self.recv_frame()
        while not fin:
            fin, _, more = self.recv_frame()
            data += more
        return op, data

    def close(self, code=1000, reason=b""):
        self.sock.sendall(self.frame(CLOSE, struct.pack("!H", code) + reason))

    def expect_close(self):
        """Skips data until a close frame: returns (code or None, reason)."""
        while True:
            op, data = self.recv()
            if op == CLOSE:
                if len(data) >= 2:
                    return struct.unpack("!H", data[:2])[0], data[2:]
                return None, b""

    def eof(self):
        """True once the server closed the TCP connection (after its close frame)."""
        try:
            while True:
                self._fill()
        except Closed:
            return True
        except ConnectionResetError:
            return True

    def shutdown(self):
        try:
            self.sock.close()
        except OSError:
            pass
