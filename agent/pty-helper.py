#!/usr/bin/env python3
"""rigbox pty helper: Node has no PTY, so the guest agent runs this for interactive sessions.

Usage: pty-helper.py   (started by rigbox-agent, as root)
  fd 4: the spec, UTF-8 JSON up to EOF:
        {"uid", "gid", "user", "cwd", "cols", "rows", "argv": [...], "env": {...}}
        argv[0] is an absolute path; argv and env reach the session byte for byte.
  fd 0: input bytes for the terminal      fd 1: output bytes of the terminal
  fd 3: control lines "COLS ROWS\\n" (resize)
  fd 2: diagnostics; the last line is {"exit_code": N|null, "signal": "SIGx"|null}
The spec does not travel in argv or in this process' environment: the kernel limits one
argument to 128 KiB, and the session's env (PATH included) must not affect the helper.
"""
import errno
import fcntl
import json
import os
import pty
import select
import signal
import struct
import sys
import termios
import time

CTL_FD = 3
SPEC_FD = 4


def read_spec():
    chunks = []
    while True:
        data = os.read(SPEC_FD, 1 << 20)
        if not data:
            break
        chunks.append(data)
    os.close(SPEC_FD)
    spec = json.loads(b"".join(chunks).decode("utf-8"))
    # Encoded here, not by the locale: the bytes the host sent are the bytes the session gets.
    spec["argv"] = [a.encode("utf-8") for a in spec["argv"]]
    spec["env"] = {k.encode("utf-8"): v.encode("utf-8") for k, v in spec["env"].items()}
    return spec


def set_size(fd, cols, rows):
    cols = max(1, min(int(cols), 10000))
    rows = max(1, min(int(rows), 10000))
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def child(spec):
    # We are the session leader with the pty slave on fds 0-2 (pty.fork did setsid + TIOCSCTTY).
    os.closerange(3, 65536)
    set_size(0, spec["cols"], spec["rows"])
    uid, gid = spec["uid"], spec["gid"]
    if uid != os.getuid():
        # The user must own its terminal, or tools that reopen /dev/pts/N (screen, script) fail.
        os.fchown(0, uid, -1)
        os.fchmod(0, 0o620)
        os.initgroups(spec["user"], gid)
        os.setgid(gid)
        os.setuid(uid)
    try:
        os.chdir(spec["cwd"])
    except OSError:
        os.chdir("/")
    argv = spec["argv"]
    try:
        os.execve(argv[0], argv, spec["env"])
    except OSError as e:
        sys.stderr.write("exec %s: %s\n" % (argv[0].decode("utf-8", "replace"), e))
        os._exit(127)


def main():
    spec = read_spec()
    pid, master = pty.fork()
    if pid == 0:
        child(spec)
        return

    def hangup(_sig, _frame):
        # The host went away: hang up the session like a closed terminal, then insist.
        try:
            os.close(master)
            os.killpg(pid, signal.SIGHUP)
        except OSError:
            pass
        for _ in range(20):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                report(status)
            time.sleep(0.1)
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        report(os.waitpid(pid, 0)[1])

    signal.signal(signal.SIGTERM, hangup)
    signal.signal(signal.SIGHUP, hangup)
    status = relay(master, pid)
    try:
        os.close(master)
    except OSError:
        pass
    report(status if status is not None else os.waitpid(pid, 0)[1])


def write_all(fd, data):
    while data:
        n = os.write(fd, data)
        data = data[n:]


def drain(master):
    try:
        while True:
            data = os.read(master, 65536)
            if not data:
                return
            write_all(1, data)
    except OSError:
        return


def relay(master, pid):
    """Relays until the terminal closes or the shell exits; returns its wait status if reaped."""
    os.set_blocking(master, False)
    pending = b""  # input the terminal has not taken yet (its input queue is small)
    stdin_open, ctl_open = True, True
    ctl_buf = b""
    while True:
        rl = [master]
        if stdin_open and len(pending) < 1 << 20:
            rl.append(0)
        if ctl_open:
            rl.append(CTL_FD)
        wl = [master] if pending else []
        try:
            r, w, _ = select.select(rl, wl, [], 0.5)
        except InterruptedError:
            continue
        if not r and not w:
            # A background job may hold the terminal open after the shell exited: do not wait
            # for it, as a closed ssh session would not.
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                drain(master)
                return status
            continue
        if master in r:
            try:
                data = os.read(master, 65536)
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    data = None
                else:
                    return None  # EIO: every slave fd is closed, the session is over
            if data == b"":
                return None
            if data:
                write_all(1, data)
        if 0 in r:
            data = os.read(0, 65536)
            if data:
                pending += data
            else:
                stdin_open = False  # host closed input: keep showing output until exit
        if CTL_FD in r:
            data = os.read(CTL_FD, 4096)
            if not data:
                ctl_open = False
            ctl_buf += data
            while b"\n" in ctl_buf:
                line, ctl_buf = ctl_buf.split(b"\n", 1)
                parts = line.split()
                if len(parts) == 2:
                    try:
                        set_size(master, parts[0], parts[1])  # kernel sends SIGWINCH
                    except (ValueError, OSError):
                        pass
            ctl_buf = ctl_buf[-4096:]
        if master in w and pending:
            try:
                n = os.write(master, pending)
                pending = pending[n:]
            except OSError as e:
                if e.errno != errno.EAGAIN:
                    return None


def report(status):
    result = {"exit_code": None, "signal": None}
    if os.WIFEXITED(status):
        result["exit_code"] = os.WEXITSTATUS(status)
    elif os.WIFSIGNALED(status):
        result["signal"] = signal.Signals(os.WTERMSIG(status)).name
    sys.stderr.write("\n" + json.dumps(result) + "\n")
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
