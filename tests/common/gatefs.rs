//! A disk that misbehaves on command: `tests/fuse/gatefs.py`, a passthrough FUSE file
//! system (Debian's python3-fusepy; the tests run as root, as `.ci/run` does) that can hold
//! upload writes until released, like a stalled disk, and fail reads with EIO.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};

use super::IO_TIMEOUT;

/// A mounted gatefs: `source()` holds the files, `mount()` shows them through FUSE.
pub struct GateFs {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    source: tempfile::TempDir,
    mount: tempfile::TempDir,
}

impl GateFs {
    /// Mounts a fresh, empty gatefs and waits until the kernel has it.
    pub fn mount() -> GateFs {
        let (source, mount) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuse/gatefs.py");
        // Debian's python3-fusepy, whatever other python3 comes first on the PATH.
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(source.path())
            .arg(mount.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run tests/fuse/gatefs.py");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        let fs = GateFs {
            child,
            stdin,
            lines,
            source,
            mount,
        };
        fs.expect("ready");
        fs
    }

    /// Where the files are kept (changes here show through the mount).
    pub fn source(&self) -> &Path {
        self.source.path()
    }

    /// The FUSE mount.
    pub fn mount_point(&self) -> &Path {
        self.mount.path()
    }

    /// Sends a command (`close`, `open`, `fail NAME`) and waits for its acknowledgement.
    pub fn command(&mut self, cmd: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        let word = cmd.split(' ').next().unwrap();
        self.expect(&format!("ok {word}"));
    }

    /// Waits for the next line starting with `prefix` (other lines are passed over) and
    /// returns the rest of it.
    pub fn expect(&self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(IO_TIMEOUT) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                Err(e) => panic!("gatefs said no {prefix:?}: {e} (is /dev/fuse there, as root?)"),
            }
        }
    }
}

impl Drop for GateFs {
    fn drop(&mut self) {
        // Closing stdin lets blocked writes through and unmounts.
        drop(self.stdin.take());
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.mount.path())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}
