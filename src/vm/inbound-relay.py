"""Inbound relay of one VM (docs/networking.md, "Inbound traffic").

Runs inside the VM's jail, as its uid, in QEMU's own network namespace, where QEMU's slirp
`hostfwd` listeners are: nothing in the host's network namespace can reach them. The host reaches
them only through the unix socket this relay listens on, in the VM's directory (mode 0700, owned
by the jail uid), which root (the router, the SSH gateway) can open and no other local user can.

Protocol: the client sends the forward's port in the namespace as ASCII digits and a newline, then
the connection is spliced to 127.0.0.1:<port> both ways, half-closes carried across. A refused or
malformed request closes the connection without a byte.

One process, no threads (the jail's pids limit also holds QEMU's threads); it dies with QEMU, its
parent (PR_SET_PDEATHSIG), so it never keeps the jail alive.
"""

import ctypes
import errno
import os
import selectors
import signal
import socket
import sys

CHUNK = 256 * 1024
MAX_CONNECTIONS = 512
PR_SET_PDEATHSIG = 1

sel = selectors.DefaultSelector()


class Side:
    """One socket of a spliced pair and what is queued to be written to it."""

    def __init__(self, sock):
        self.sock = sock
        self.out = b""  # bytes read from the peer, not yet written here
        self.read_eof = False  # the peer of this side will send nothing more
        self.write_shut = False  # we told this side we send nothing more


class Conn:
    live = 0

    def __init__(self, client):
        Conn.live += 1
        self.client = Side(client)
        self.upstream = None
        self.head = b""
        self.connecting = False
        self.closed = False
        client.setblocking(False)
        sel.register(client, selectors.EVENT_READ, self)

    def close(self, reset=False):
        if self.closed:
            return
        self.closed = True
        Conn.live -= 1
        for side in (self.client, self.upstream):
            if side is None:
                continue
            try:
                sel.unregister(side.sock)
            except (KeyError, ValueError):
                pass
            if reset and side.sock.family == socket.AF_INET:
                # An abortive close: the far end sees the failure instead of a clean end.
                side.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            side.sock.close()

    def on_event(self, sock, mask):
        try:
            if self.upstream is None:
                self.read_head()
            elif self.connecting:
                self.finish_connect()
            else:
                side = self.client if sock is self.client.sock else self.upstream
                peer = self.upstream if side is self.client else self.client
                if mask & selectors.EVENT_READ:
                    self.pump(side, peer)
                if mask & selectors.EVENT_WRITE and not self.closed:
                    self.flush(side)
            if not self.closed and not self.connecting:
                self.rearm()
        except OSError:
            self.close(reset=True)

    def read_head(self):
        data = self.client.sock.recv(16)
        if not data:
            return self.close()
        self.head += data
        if b"\n" not in self.head:
            if len(self.head) > 8:
                self.close()
            return
        line, rest = self.head.split(b"\n", 1)
        if not line.isdigit() or not 0 < int(line) < 65536:
            return self.close()
        self.upstream = Side(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        self.upstream.sock.setblocking(False)
        self.upstream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstream.out = rest
        self.connecting = True
        rc = self.upstream.sock.connect_ex(("127.0.0.1", int(line)))
        if rc not in (0, errno.EINPROGRESS):
            return self.close()
        sel.unregister(self.client.sock)
        sel.register(self.upstream.sock, selectors.EVENT_WRITE, self)

    def finish_connect(self):
        if self.upstream.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            return self.close()
        self.connecting = False
        sel.unregister(self.upstream.sock)
        self.flush(self.upstream)  # what followed the port line; rearm() registers both sockets

    def pump(self, src, dst):
        """Reads what src sent and queues it for dst (src was readable: dst's queue is empty)."""
        data = src.sock.recv(CHUNK)
        if data:
            dst.out += data
            self.flush(dst)
        else:
            dst.read_eof = True
            self.flush(dst)

    def flush(self, side):
        if side.out:
            try:
                n = side.sock.send(side.out)
                side.out = side.out[n:]
            except BlockingIOError:
                pass
        if not side.out and side.read_eof and not side.write_shut:
            side.write_shut = True
            side.sock.shutdown(socket.SHUT_WR)
        if self.client.write_shut and self.upstream.write_shut:
            self.close()

    def rearm(self):
        """Reads from a socket only while its peer's queue is empty (backpressure both ways)."""
        for side, peer in ((self.client, self.upstream), (self.upstream, self.client)):
            events = 0
            if not peer.out and not peer.read_eof:
                events |= selectors.EVENT_READ
            if side.out:
                events |= selectors.EVENT_WRITE
            key = sel.get_map().get(side.sock)
            if events and key is None:
                sel.register(side.sock, events, self)
            elif events and key.events != events:
                sel.modify(side.sock, events, self)
            elif not events and key is not None:
                sel.unregister(side.sock)


def main():
    path = sys.argv[1]
    parent = os.getppid()
    # Dies with QEMU (the shell that started this relay became QEMU by exec).
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        sys.exit(0)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.umask(0o077)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(128)
    server.setblocking(False)
    sel.register(server, selectors.EVENT_READ, None)
    while True:
        for key, mask in sel.select():
            if key.data is None:
                try:
                    client, _ = server.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    continue  # out of descriptors: the client sees a closed connection
                if Conn.live >= MAX_CONNECTIONS:
                    client.close()
                    continue
                Conn(client)
            else:
                key.data.on_event(key.fileobj, mask)


if __name__ == "__main__":
    main()
