#!/usr/bin/env python3
"""A save through the mount while a person's program runs on the board.

Usage: save_running.py WEBREPL_MOUNT MOUNTPOINT BOARD_ROOT [SECS]

For `exec` and for `run` of a program that prints a line every 100 ms for
SECS seconds (default 4): once its first line is out, a 2 KB .py file is
saved through the mount (written and closed, as an editor does; a new
file, then the same file changed). Prints how long close() took, whether
the program's lines kept coming meanwhile, and when the file was on the
board (BOARD_ROOT is the test board's filesystem) against the program's
end. Targets (issue 20): close() <= 2.5 s, the file on the board within
1 s of the program's end.
"""
import base64, os, subprocess, sys, tempfile, threading, time

wm, mnt, root = sys.argv[1:4]
secs = float(sys.argv[4]) if len(sys.argv) > 4 else 4.0
ticks = int(secs * 10)
program = "import time\nfor i in range(%d):\n    print('tick', i)\n    time.sleep(0.1)\n" % ticks


def save(name, n):
    # Random text (a little like minified code): it compresses as little
    # as real modules do, not 500 times as a repeated line does.
    size = int(os.environ.get("SAVE_BYTES") or 2048)
    noise = base64.b64encode(os.urandom(size)).decode()
    body = ("# save %d\n" % n + noise)[:size].encode()
    t = time.time()
    with open(os.path.join(mnt, name), "wb") as f:
        f.write(body)
    return time.time() - t, body


def landed(name, body, limit):
    end = time.time() + limit
    p = os.path.join(root, name)
    while time.time() < end:
        try:
            with open(p, "rb") as f:
                if f.read() == body:
                    return time.time()
        except OSError:
            pass
        time.sleep(0.01)
    return None


def one(how, n):
    name = "saved_%s.py" % how
    if how == "run":
        local = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)
        local.write(program)
        local.close()
        argv = [wm, "run", local.name, mnt]
    else:
        argv = [wm, "exec", mnt, program]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines, end = [], []

    def read():
        for l in p.stdout:
            lines.append((time.time(), l))
        p.wait()
        end.append(time.time())

    r = threading.Thread(target=read, daemon=True)
    r.start()
    start = time.time()
    while not lines and time.time() - start < 30:
        time.sleep(0.005)
    if not lines:
        raise SystemExit("%s: no line from the program: %s" % (how, p.stderr.read()))
    time.sleep(0.3)
    took, body = save(name, n)
    at = landed(name, body, secs + 30)
    r.join(30)
    ended = end[0] if end else time.time()
    gaps = [b[0] - a[0] for a, b in zip(lines, lines[1:])]
    if how == "run":
        os.unlink(local.name)
    on = "never (30 s)" if at is None else "%+.2f s from the program's end" % (at - ended)
    print("  %-4s save %d: close() %.2f s; on the board %s; %d/%d lines, longest gap %.0f ms%s" % (
        how, n, took, on, sum(1 for _ in lines), ticks, max(gaps or [0]) * 1000,
        "" if p.returncode == 0 else "; exit %d: %s" % (p.returncode, p.stderr.read().decode().strip()[-200:])))


print("a save through the mount while a program printing every 100 ms for %.0f s runs:" % secs)
for how in ("exec", "run"):
    for n in (1, 2):
        one(how, n)
