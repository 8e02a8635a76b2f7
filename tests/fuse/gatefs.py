#!/usr/bin/python3
"""A passthrough FUSE file system with faults on command, for ringserve's disk-fault tests.

    gatefs.py SOURCE MOUNTPOINT

mirrors SOURCE at MOUNTPOINT (run as root, in the foreground) and prints `ready` once the
kernel has mounted it. Commands, one per line on stdin:

    close         writes to `*.part` files (upload data) block until `open`; each write that
                  blocks prints `blocked NAME` first
    open          lets blocked and later writes through
    fail NAME     reads of files named NAME fail with EIO (a bad sector, say)

It exits, unmounting, when stdin closes. Debian's python3-fusepy (module `fusepy`).
"""

import errno
import os
import sys
import threading

try:
    from fusepy import FUSE, FuseOSError, Operations
except ImportError:  # fusepy from PyPI
    from fuse import FUSE, FuseOSError, Operations


class GateFs(Operations):
    def __init__(self, source):
        self.source = os.path.realpath(source)
        self.gate = threading.Event()
        self.gate.set()
        self.failing = set()

    def _full(self, path):
        return os.path.join(self.source, path.lstrip("/"))

    def init(self, path):
        print("ready", flush=True)

    # Metadata.
    def access(self, path, mode):
        if not os.access(self._full(path), mode):
            raise FuseOSError(errno.EACCES)

    def getattr(self, path, fh=None):
        st = os.lstat(self._full(path)) if fh is None else os.fstat(fh)
        keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink",
                "st_size", "st_uid", "st_ino")
        attrs = {k: getattr(st, k) for k in keys}
        for k in ("st_atime", "st_ctime", "st_mtime"):
            attrs[k] = getattr(st, k + "_ns") / 1e9
        return attrs

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._full(path))

    def readlink(self, path):
        return os.readlink(self._full(path))

    def statfs(self, path):
        st = os.statvfs(self._full(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
                "f_files", "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}

    def chmod(self, path, mode):
        os.chmod(self._full(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._full(path), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self._full(path), times)

    def mkdir(self, path, mode):
        os.mkdir(self._full(path), mode)

    def rmdir(self, path):
        os.rmdir(self._full(path))

    def unlink(self, path):
        os.unlink(self._full(path))

    def rename(self, old, new):
        os.rename(self._full(old), self._full(new))

    def link(self, target, source):
        os.link(self._full(source), self._full(target))

    def symlink(self, target, source):
        os.symlink(source, self._full(target))

    # Files.
    def open(self, path, flags):
        return os.open(self._full(path), flags)

    def create(self, path, mode, fi=None):
        return os.open(self._full(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)

    def read(self, path, size, offset, fh):
        if os.path.basename(path) in self.failing:
            raise FuseOSError(errno.EIO)
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        if path.endswith(".part") and not self.gate.is_set():
            print("blocked " + os.path.basename(path), flush=True)
            self.gate.wait()
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        if fh is None:
            os.truncate(self._full(path), length)
        else:
            os.ftruncate(fh, length)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        os.close(fh)

    def fsync(self, path, datasync, fh):
        if datasync:
            os.fdatasync(fh)
        else:
            os.fsync(fh)

    def commands(self):
        for line in sys.stdin:
            word, _, arg = line.strip().partition(" ")
            if word == "close":
                self.gate.clear()
            elif word == "open":
                self.gate.set()
            elif word == "fail":
                self.failing.add(arg)
            print("ok " + word, flush=True)
        self.gate.set()
        os.system("umount -l " + sys.argv[2])


def main():
    source, mountpoint = sys.argv[1], sys.argv[2]
    fs = GateFs(source)
    threading.Thread(target=fs.commands, daemon=True).start()
    FUSE(fs, mountpoint, foreground=True, nothreads=False, use_ino=True)


if __name__ == "__main__":
    main()
