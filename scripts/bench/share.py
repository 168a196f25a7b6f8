# Drives `webrepl-mount share DIR BOARD` through a pipe and prints what the
# board measures (time.ticks_ms on the board: what a person there sees).
# Usage: share.py WM DIR BOARD LABEL
import os, re, subprocess, sys, threading, time

wm, share_dir, board, label = sys.argv[1:5]
p = subprocess.Popen([wm, "share", share_dir, board], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
seen = bytearray()


def pump():
    while True:
        b = p.stdout.read1(4096)
        if not b:
            return
        seen.extend(b)


threading.Thread(target=pump, daemon=True).start()


def wait(pattern, start, secs=60):
    end = time.time() + secs
    while time.time() < end:
        m = re.search(pattern, seen[start:].decode("utf-8", "replace"))
        if m:
            return m
        time.sleep(0.02)
    sys.exit("never saw %r; the terminal shows %r" % (pattern, bytes(seen[start:])))


def type_line(code):
    p.stdin.write(code.encode() + b"\r")
    p.stdin.flush()


wait("Ctrl-] ends the share", 0)
for i, name in enumerate(["mod10k", "mod10k_b", "mod10k_c"]):
    at = len(seen)
    # Imported afresh each run (the board keeps modules until a reset).
    # (and forgotten after: a 10 KB module's globals take much of the heap).
    type_line("import gc, sys, time; gc.collect(); t = time.ticks_ms(); import %s; print('import_ms', time.ticks_diff(time.ticks_ms(), t)); del %s; _ = sys.modules.pop('%s')" % (name, name, name))
    ms = int(wait(r"import_ms (\d+)", at).group(1))
    print("%s: import of a 10 KB module from /remote: %.3f s" % (label, ms / 1000))
for _ in range(2):
    at = len(seen)
    type_line("f = open('data50k.bin', 'rb'); b = bytearray(4096); n = 0; t = time.ticks_ms()")
    type_line("while f.readinto(b): n += 1\r")
    type_line("print('read_ms', time.ticks_diff(time.ticks_ms(), t), n)")
    m = wait(r"read_ms (\d+) (\d+)", at)
    ms = int(m.group(1))
    print("%s: read of 50 KB from /remote (4 KB pieces): %.3f s, %.1f KB/s" % (label, ms / 1000, 51200 / ms))
assert "\x18" not in seen.decode("latin-1"), "protocol bytes on the terminal"
p.stdin.write(b"\x1d")
p.stdin.flush()
p.wait(timeout=30)
