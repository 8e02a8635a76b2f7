//! Starting, watching and stopping the `ringserve` binary under test.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

/// Longest any single socket read or write may block before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the server may take to print its start-up lines.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `ringserve` process. Dropping it kills the process (SIGKILL) and reaps it.
pub struct Server {
    proc: Proc,
    addrs: Vec<SocketAddr>,
}

/// Command-line arguments for a test server: `--root root`, then `--listen 127.0.0.1:0
/// --workers 2 --backend <backend> --access-log off` except where `extra` sets the flag itself,
/// then `extra`.
fn server_args(backend: Backend, root: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--root".to_string(), root.display().to_string()];
    let defaults = [
        ("--listen", "127.0.0.1:0"),
        ("--workers", "2"),
        ("--backend", backend.as_arg()),
        ("--access-log", "off"),
    ];
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            args.extend([flag.to_string(), value.to_string()]);
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A spawned `ringserve` with a thread draining its stderr.
struct Proc {
    child: Child,
    /// Every stderr line so far.
    log: Arc<Mutex<Vec<String>>>,
    /// Each stderr line as it arrives; disconnected once stderr is closed (at exit).
    lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Spawns the binary with `args`, stdin and stdout detached.
    fn spawn<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringserve"));
        cmd.args(args).envs(env.iter().copied());
        Proc::spawn_command(cmd)
    }

    /// Spawns `cmd`, stdin and stdout detached.
    fn spawn_command(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringserve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Proc { child, log, lines }
    }

    /// The next stderr line, waiting until `deadline`.
    fn next_line(&self, deadline: Instant) -> Result<String, mpsc::RecvTimeoutError> {
        self.lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
    }

    /// Waits at most `timeout` for the process to close its stderr (which it does by exiting,
    /// and which means every line has been collected), then reaps it.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next_line(deadline) {
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => return None,
            }
        }
        Some(self.child.wait().expect("wait"))
    }

    /// Waits for the process (`what` it is, for the message) to exit within `timeout`;
    /// returns its exit status and stderr lines, or kills it and panics.
    fn exit_within(mut self, timeout: Duration, what: &str) -> (ExitStatus, Vec<String>) {
        let Some(status) = self.wait(timeout) else {
            let _ = self.kill();
            panic!(
                "{what} still running after {timeout:?}; stderr:\n{}",
                self.stderr().join("\n")
            );
        };
        (status, self.stderr())
    }

    /// The stderr lines collected so far.
    fn stderr(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Kills (SIGKILL) and reaps the process.
    fn kill(&mut self) -> io::Result<ExitStatus> {
        let _ = self.child.kill();
        self.child.wait()
    }

    /// Waits up to [`START_TIMEOUT`] until the process (`what` it is, for the message) has
    /// printed `addrs` `listening on` lines and `workers` `worker` lines; returns it with the
    /// listen addresses and the worker lines, or kills it and panics.
    fn started(
        mut self,
        what: &str,
        addrs: usize,
        workers: usize,
    ) -> (Proc, Vec<SocketAddr>, Vec<String>) {
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut found, mut started) = (Vec::new(), Vec::new());
        while found.len() < addrs || started.len() < workers {
            let line = match self.next_line(deadline) {
                Ok(line) => line,
                Err(e) => {
                    let status = self.kill();
                    panic!(
                        "server did not start ({e}; exit {status:?}); {what}; stderr:\n{}",
                        self.stderr().join("\n")
                    );
                }
            };
            if let Some(addr) = line.strip_prefix("ringserve: listening on ") {
                let addr = addr.trim();
                let parsed = addr.parse();
                found.push(parsed.unwrap_or_else(|e| panic!("bad address {addr:?}: {e}")));
            } else if line.starts_with("ringserve: worker ") {
                started.push(line);
            }
        }
        (self, found, started)
    }
}

/// The value following `flag` in `args`, if any.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).map(String::as_str)
}

impl Server {
    /// Starts the server on `root` (see [`server_args`] for the arguments) and waits until it
    /// has printed one `listening on` line per `--listen` and one `worker` line per worker.
    /// Unless `extra` picks the backend, asserts that every worker runs `backend`.
    pub fn start(backend: Backend, root: &Path, extra: &[&str]) -> Server {
        let args = server_args(backend, root, extra);
        let want_addrs = args.iter().filter(|a| *a == "--listen").count();
        let want_workers: usize = flag_value(&args, "--workers")
            .and_then(|n| n.parse().ok())
            .expect("--workers N");
        let what = format!("args {args:?}");
        let (proc, addrs, workers) =
            Proc::spawn(&args, &[]).started(&what, want_addrs, want_workers);
        if !extra.contains(&"--backend") {
            for line in &workers {
                let picked = worker_backend(line);
                assert_eq!(picked, Some(backend.as_arg()), "worker line {line:?}");
            }
        }
        Server { proc, addrs }
    }

    /// Runs the server with the same arguments as [`Server::start`] expecting it to exit
    /// within `timeout` (e.g. on a start-up error); returns its exit status and stderr lines.
    pub fn run_to_exit(
        backend: Backend,
        root: &Path,
        extra: &[&str],
        timeout: Duration,
    ) -> (ExitStatus, Vec<String>) {
        let args = server_args(backend, root, extra);
        Proc::spawn(&args, &[]).exit_within(timeout, &format!("server with {args:?}"))
    }

    /// The first bound listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every bound listen address, in the order the server printed them.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Opens a new client connection to [`Server::addr`].
    pub fn connect(&self) -> Conn {
        Conn::connect(self.addr())
    }

    /// One request on a new connection; returns the response.
    pub fn fetch(&self, request: &str) -> Response {
        self.connect().roundtrip(request)
    }

    /// Everything the server has written to stderr so far, one entry per line.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.proc.stderr()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    /// Sends a signal (`"TERM"`, `"INT"`, ...) to the server with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.proc.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// Waits for the server to exit, panicking after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.proc.wait(timeout) {
            Some(status) => status,
            None => panic!("server still running after {timeout:?}"),
        }
    }

    /// Whether the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.proc.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        if thread::panicking() {
            eprintln!("--- server stderr ---\n{}", self.stderr_lines().join("\n"));
        }
    }
}

/// The backend named by a start-up line `ringserve: worker N: backend NAME (...)`.
pub fn worker_backend(line: &str) -> Option<&str> {
    line.split_once(": backend ")?.1.split_whitespace().next()
}

impl Server {
    /// Starts the binary with exactly `args` and the extra environment `env` (no default
    /// flags added) and waits until it has printed `addrs` `listening on` lines and `workers`
    /// `worker` lines.
    pub fn start_exact(
        args: &[&str],
        env: &[(&str, &str)],
        addrs: usize,
        workers: usize,
    ) -> Server {
        let what = format!("args {args:?}");
        Server::start_proc(Proc::spawn(args, env), &what, addrs, workers)
    }

    /// Starts `cmd` (which runs the binary, maybe through a wrapper) and waits as
    /// [`Server::start_exact`] does.
    pub fn start_command(cmd: Command, addrs: usize, workers: usize) -> Server {
        let what = format!("{cmd:?}");
        Server::start_proc(Proc::spawn_command(cmd), &what, addrs, workers)
    }

    /// Runs `cmd` expecting it to exit within `timeout`; returns its exit status and stderr.
    pub fn command_to_exit(cmd: Command, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let what = format!("{cmd:?}");
        Proc::spawn_command(cmd).exit_within(timeout, &what)
    }

    fn start_proc(proc: Proc, what: &str, addrs: usize, workers: usize) -> Server {
        let (proc, addrs, _) = proc.started(what, addrs, workers);
        Server { proc, addrs }
    }

    /// Waits up to [`START_TIMEOUT`] for a stderr line starting with `prefix` and returns the
    /// rest of it.
    pub fn wait_line(&self, prefix: &str) -> String {
        self.wait_lines(prefix, 1).remove(0)
    }

    /// Waits up to [`START_TIMEOUT`] for `n` stderr lines starting with `prefix` and returns
    /// the rest of each.
    pub fn wait_lines(&self, prefix: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let found: Vec<String> = self
                .stderr_lines()
                .iter()
                .filter_map(|l| l.strip_prefix(prefix).map(str::to_string))
                .collect();
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no line starting with {prefix:?}; stderr:\n{}",
                self.stderr_lines().join("\n")
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}
