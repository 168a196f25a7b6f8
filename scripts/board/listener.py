# The test board's webrepl.py: this MicroPython process is one board.
# Usage: micropython listener.py PORT PASSWORD ROOT [RING_BYTES]
# Like a board's webrepl.py: case-sensitive upgrade parsing, 101 with the
# accept key, _webrepl for login and file transfer, one client at a time.
# Like an ESP board's socket callback: a thread takes input as it arrives
# (file transfers and Ctrl-C work while a program runs) into a finite ring.
import sys, os, io, socket, select, struct, binascii, time, _thread
import vfs, websocket, _webrepl, boardrepl, ffi

PORT = int(sys.argv[1])
PASSWORD = sys.argv[2]
ROOT = sys.argv[3]
RING = int(sys.argv[4]) if len(sys.argv) > 4 else 1 << 20
# A real board takes a moment to notice that its client has gone, and
# refuses the next one meanwhile: that moment, if the tests want it.
LINGER_MS = int(os.getenv("WEBREPL_BOARD_LINGER_MS") or 0)
# An ESP32's flash writes at tens of KB/s (littlefs), not at a host disk's
# speed: bytes a second written, if the tests want a board that slow.
FLASH_WRITE = int(os.getenv("WEBREPL_BOARD_FLASH_WRITE") or 0)


def sha1(msg):
    # This build has no hashlib.sha1 (TLS is off).
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    n = len(msg)
    msg = msg + b"\x80" + b"\x00" * ((55 - n) % 64) + struct.pack(">Q", n * 8)
    M = 0xFFFFFFFF
    for i in range(0, len(msg), 64):
        w = list(struct.unpack(">16I", msg[i : i + 64]))
        for t in range(16, 80):
            x = w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]
            w.append(((x << 1) | (x >> 31)) & M)
        a, b, c, d, e = h
        for t in range(80):
            if t < 20:
                f, k = (b & c) | (~b & d), 0x5A827999
            elif t < 40:
                f, k = b ^ c ^ d, 0x6ED9EBA1
            elif t < 60:
                f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
            else:
                f, k = b ^ c ^ d, 0xCA62C1D6
            t2 = (((a << 5) | (a >> 27)) + f + e + k + w[t]) & M
            e, d, c, b, a = d, c, ((b << 30) | (b >> 2)) & M, a, t2
        h = [(x + y) & M for x, y in zip(h, (a, b, c, d, e))]
    return struct.pack(">5I", *h)


class Term(io.IOBase):
    # The board's terminal as dupterm sees it. `io` serialises every use of
    # the websocket: the firmware writes a frame's header and payload in two
    # socket writes, which a second thread must not split.
    # The ring is a pipe on fd 0, so that sys.stdin reads what the REPL
    # reads, as on an ESP board (the unix port's sys.stdin is fd 0; a
    # board's is the REPL's input, which mpremote-style tools read).
    def __init__(self, cap):
        self.cap = cap
        self.lock = _thread.allocate_lock()
        self.io = _thread.allocate_lock()
        self.wr = None
        libc = ffi.open(None)
        self.w_ = libc.func("i", "write", "iPi")
        self.r_ = libc.func("i", "read", "ipi")
        self.ioctl = libc.func("i", "ioctl", "iip")
        fds = bytearray(8)
        libc.func("i", "pipe", "p")(fds)
        r, self.wfd = struct.unpack("ii", fds)
        libc.func("i", "dup2", "ii")(r, 0)
        libc.func("i", "close", "i")(r)
        # A write to a full pipe would block holding the GIL: the ring's
        # cap stays below the pipe's size.
        size = libc.func("i", "fcntl", "iii")(self.wfd, 1031, 1 << 20)  # F_SETPIPE_SZ
        self.cap = min(cap, (size if size > 0 else 65536) - 1)
        self.n = bytearray(4)
        # On dupterm: the pump takes what comes into the ring (see BoardOs).
        self.attached = True
        # Bytes the ring took, for tests (`term.fed` in a board program).
        self.fed = 0

    def queued(self):
        self.ioctl(0, 0x541B, self.n)  # FIONREAD
        return struct.unpack("i", self.n)[0]

    def feed(self, b):
        if b == b"\x03" and boardrepl.ctrl_c():
            return
        with self.lock:
            if self.queued() < self.cap:
                self.w_(self.wfd, b, len(b))
                self.fed += len(b)
            # else: dropped without a word, as an ESP board's ring does

    def read(self, n):
        c = bytearray(1)
        while True:
            if self.queued() > 0 and self.r_(0, c, 1) == 1:
                return bytes(c)
            time.sleep_ms(1)

    def readinto(self, b):
        if not self.attached:
            # Taken off dupterm, as a board's _webrepl stream: read from the
            # websocket itself (None until bytes come, 0 at the end).
            wr = self.wr
            if wr is None:
                return 0
            with self.io:
                return wr.readinto(b)
        c = self.read(1)
        b[0] = c[0]
        return 1

    def write(self, data):
        # A board's stream write is C, where a Ctrl-C heard meanwhile waits
        # for the program's next line. This one is Python, and the VM raises
        # a pending KeyboardInterrupt at any branch in it; dupterm takes an
        # exception from write() for a broken stream and drops it for good
        # (the REPL then reads EOF and the board ends). So whatever strikes
        # is caught (a bare except: matching a type would be a branch) and
        # the interrupt scheduled again, to strike the program once this
        # returns: no branch follows, where the VM would raise it here.
        try:
            self.send(data)
            return len(data)
        except:
            return boardrepl.ctrl_c() * 0 + len(data)

    def send(self, data):
        wr = self.wr
        if wr is not None:
            with self.io:
                try:
                    wr.write(data)
                except OSError:
                    pass

    def say(self, text):
        # Board-side messages to the current client, like webrepl.py's prints.
        self.send(text.encode())


class BoardOs:
    # `os`, as programs on this board import it. An ESP board's socket
    # callback (os.dupterm_notify) pulls the WebREPL's input into the ring
    # only while its stream is on dupterm: taken off with
    # `os.dupterm(None, 0)`, the bytes wait in the socket for whoever reads
    # the stream. This board's pump is a thread, told here. (Programs run
    # in this script's globals: `import os` there rebinds `os`.)
    def __init__(self, real, term):
        self.real = real
        self.term = term

    def __getattr__(self, name):
        return getattr(self.real, name)

    def dupterm(self, stream, index=0):
        prev = self.real.dupterm(stream, index)
        if index == 0:
            self.term.attached = stream is self.term
        return prev


class BoardFs:
    # The board's filesystem: VfsPosix on a scratch directory, but renames
    # go through boardrepl.rename (VfsPosix 1.25 garbles them, see there).
    # One call at a time: VfsPosix builds every host path in one buffer of
    # its own and lets go of the GIL in the syscall that reads it, so the
    # listener thread (a PUT's open) and the REPL (a program's stat or
    # rename) rewrote each other's paths: a part file came up one byte
    # short, a listed program would not compile. A board's FAT and
    # littlefs have no such buffer.
    def __init__(self, root):
        self.root = root.rstrip("/")
        self.fs = vfs.VfsPosix(root)
        self.lock = _thread.allocate_lock()

    def __getattr__(self, name):
        f = getattr(self.fs, name)
        lock = self.lock

        def locked(*args):
            with lock:
                return f(*args)

        return locked

    def rename(self, old, new):
        with self.lock:
            boardrepl.rename(self.host(old), self.host(new))

    def host(self, path):
        if not path.startswith("/"):
            path = self.fs.getcwd().rstrip("/") + "/" + path
        return self.root + path


# Defined only when asked for: the listener shares the board's heap,
# which the small-heap tests fill to the last block.
if FLASH_WRITE:
    REPL_THREAD = _thread.get_ident()

    class SlowFile(io.IOBase):
        # A file on flash that writes FLASH_WRITE bytes a second (only
        # files opened to write are wrapped). The sleep lets go of the GIL,
        # as a board's flash write lets its Wi-Fi run.
        def __init__(self, f):
            self.f = f
            # Opened by a program (the REPL's thread), not by a PUT.
            self.raising = _thread.get_ident() == REPL_THREAD

        def write(self, b):
            # A full flash: a program's write raises, as on a board; a
            # PUT's writes nothing more (the firmware ignores the error and
            # leaves a short file; raised here, it would end the WebREPL
            # connection).
            try:
                n = self.f.write(b)
            except OSError:
                if self.raising:
                    raise
                return 0
            time.sleep_ms(len(b) * 1000 // FLASH_WRITE)
            return n

        def flush(self):
            return self.f.flush()

        def close(self):
            self.f.close()

        def ioctl(self, req, arg):
            if req == 4:  # MP_STREAM_CLOSE, as the firmware closes a PUT's file
                self.f.close()
            return 0

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    def slow_open(self, path, mode):
        with self.lock:
            f = self.fs.open(path, mode)
        return SlowFile(f) if "w" in mode or "a" in mode else f

    BoardFs.open = slow_open


def log(*args):
    # The host's stderr (sys.stderr is the board's terminal here too).
    ERR.write("[board %d] %s\n" % (PORT, " ".join(str(a) for a in args)))


def recv_request(cl):
    # Read from the socket itself: a makefile() on this port closes the fd
    # when it is garbage-collected, dropping live connections later.
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = cl.recv(512)
        if not chunk or len(data) > 4096:
            return None
        data += chunk
    return data


def handshake(cl):
    req = recv_request(cl)
    if req is None:
        return False
    key = None
    upgrade = ws = False
    for line in req.split(b"\r\n")[1:]:
        if b":" not in line:
            continue
        h, v = [x.strip() for x in line.split(b":", 1)]
        # Case-sensitive on purpose: this is what boards do.
        if h == b"Sec-WebSocket-Key":
            key = v
        elif h == b"Connection" and b"Upgrade" in v:
            upgrade = True
        elif h == b"Upgrade" and v == b"websocket":
            ws = True
    if not (key and upgrade and ws):
        cl.send(b"HTTP/1.0 200 OK\r\n\r\n<html><body>This is a WebREPL endpoint: "
                b"connect with a WebSocket client.</body></html>\r\n")
        return False
    accept = binascii.b2a_base64(sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))[:-1]
    cl.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    return True


def serve(cl):
    ws = websocket.websocket(cl, True)
    wr = _webrepl._webrepl(ws)  # sends "Password: "
    cl.setblocking(False)
    term.wr = wr
    poller = select.poll()
    poller.register(cl, select.POLLIN)
    try:
        while term.wr is wr:
            poller.poll(20)
            if not term.attached:
                time.sleep_ms(1)
                continue
            with term.io:
                b = wr.read(1)
            if b is None:
                continue
            if not b:
                break  # end of connection, or a wrong password
            term.feed(b)
    except Exception as e:
        # A failed file operation (missing file, missing directory) raises in
        # the board's terminal driver: it prints a line and drops the client.
        log("client dropped:", repr(e))
        with term.io:
            try:
                ws.write(b"\r\n")
            except OSError:
                pass
    if LINGER_MS:
        time.sleep_ms(LINGER_MS)
    if term.wr is wr:
        term.wr = None
    cl.close()


def accept_loop(ls):
    while True:
        cl, addr = ls.accept()
        try:
            if not handshake(cl):
                cl.close()
                continue
        except OSError:
            cl.close()
            continue
        if term.wr is not None:
            log("rejected a second client")
            # The unix port hands out a raw sockaddr_in.
            peer = (".".join(str(x) for x in addr[4:8]), addr[2] << 8 | addr[3])
            term.say("\nConcurrent WebREPL connection from %s rejected\n" % (peer,))
            cl.close()
            continue
        _thread.start_new_thread(serve, (cl,))


_webrepl.password(PASSWORD)
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
ls.listen(1)
term = Term(RING)

# Append: "w" would truncate whatever file our stderr is (a CI log).
ERR = open("/dev/stderr", "a")
vfs.umount("/")
vfs.mount(BoardFs(ROOT), "/")
os.chdir("/")
# A board's import path, not this script's directory on the host: "" (the
# current directory) first, then the board's /lib.
sys.path.clear()
sys.path.extend(["", ".frozen", "/lib"])
print("board ready on port", PORT)

_thread.start_new_thread(accept_loop, (ls,))
os.dupterm(term)
sys.modules["os"] = BoardOs(os, term)
while True:
    if boardrepl.run():
        # Soft reset ends the connection on this port, as measured.
        term.say("MPY: soft reboot\r\n")
        wr = term.wr
        term.wr = None
        if wr is not None:
            with term.io:
                try:
                    wr.close()
                except OSError:
                    pass
