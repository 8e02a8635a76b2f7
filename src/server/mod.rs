//! The process's assembly point: everything between the parsed configuration and the
//! running workers.
//!
//! [`run`] opens everything that may need root first — listeners (one `SO_REUSEPORT` socket
//! per worker and address, so the kernel spreads connections over workers with no shared
//! accept lock, or the sockets systemd passed, see [`activation`]), the root directory, log
//! files, the admin socket — then drops to `--user`, and only then starts the workers, so no
//! request is ever served as root. Signals are blocked in every thread and taken by one
//! thread with `sigwait`, which turns each into a [`SignalEvent`] and wakes the workers
//! through their eventfds. On SIGHUP that thread reads and checks the configuration again
//! and hands it to the workers, which swap it in between two loop turns (see [`reload`]).

pub mod activation;
pub mod admin;
mod bind;
pub mod reload;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use crate::config::{Config, Sources};
use crate::engine::reload::{Reloads, Watch};
use crate::engine::worker::Worker;
use crate::engine::{self, Chosen, Shutdown, WorkerSetup};
use crate::fs::{Digests, FileCache};
use crate::metrics::access_log::{AccessLog, Reopen};
use crate::metrics::{WorkerHandle, WorkerMetrics};
use crate::policy::{self, Policy};
use crate::serve::Handler;
use crate::sys::{self, SignalEvent};
use admin::AdminState;
use reload::Reloader;

/// Runs the server until SIGINT/SIGTERM and the drain that follows; on SIGHUP, reads the
/// configuration again from `sources`, where `config` came from.
pub fn run(config: Config, sources: Sources) -> io::Result<()> {
    // First of all, so that a SIGUSR1 from logrotate during start-up stays pending instead
    // of killing the process.
    sys::block_signals()?;
    let activated = activation::take()?;
    let mut config = Arc::new(config);
    let root = |c: &Config| c.open_root().map_err(io::Error::other);
    root(&config)?;
    let (listeners, bound) = match activated {
        Some(sockets) => {
            eprintln!(
                "ringserve: serving on {} socket(s) passed by the service manager (--listen \
                 ignored)",
                sockets.len()
            );
            activation::share(sockets, config.workers)?
        }
        None => bind::bind_all(&config.listen, config.workers)?,
    };
    // HTTPS listeners are bound here even under socket activation.
    let (tls_listeners, tls_bound) = bind::bind_all(&config.tls_listen, config.workers)?;
    if let (Some(_), Some(bound)) = (config.redirect_https, tls_bound.first()) {
        // The port actually bound, for a --tls-listen with port 0.
        Arc::make_mut(&mut config).redirect_https = Some(bound.port());
    }

    let metrics = WorkerMetrics::for_workers(config.workers);
    let uploads = match &config.uploads {
        Some(settings) => {
            let uploads =
                crate::upload::Uploads::open(&config.root, settings).map_err(io::Error::other)?;
            let uploads = Arc::new(uploads);
            // Expiries are counted with the first worker's upload failures.
            let counts = WorkerHandle::new(&metrics, 0);
            crate::upload::sweep::start(uploads.clone(), settings.expire, move |n| {
                for _ in 0..n {
                    if let Some(c) = &counts {
                        c.upload_failed(crate::metrics::UploadFailure::Expired);
                    }
                }
            })?;
            Some((uploads, crate::upload::pool::Pool::start()?))
        }
        None => None,
    };
    let shutdown = Shutdown::default();
    // Set at SIGTERM, before the workers drain (`--drain-delay`): `/readyz` answers 503.
    let unready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reopen = Reopen::default();
    let shared = policy::Shared::new(&config.policy);
    let reloads = Arc::new(Reloads::default());
    let digests = Arc::new(Digests::default());
    let mut wakes = Vec::new();
    let mut setups = Vec::new();
    for (i, (mut listeners, tls)) in listeners.into_iter().zip(tls_listeners).enumerate() {
        let wake = sys::eventfd()?;
        wakes.push(wake.try_clone()?);
        let tls_from = listeners.len();
        listeners.extend(tls);
        let mut worker = Worker::new(
            Handler::new(
                root(&config)?,
                FileCache::new(config.open_file_cache, config.open_file_cache_valid),
            )
            .with_content(config.content.clone())
            .with_digests(digests.clone()),
            config.clone(),
            access_log(&config, &reopen)?,
            Policy::new(config.policy.clone(), shared.clone()),
            WorkerHandle::new(&metrics, i).ok_or_else(|| io::Error::other("worker index"))?,
        );
        if let Some((uploads, disk)) = &uploads {
            worker.uploads = Some(uploads.clone());
            worker.disk = Some(disk.clone());
        }
        setups.push(WorkerSetup {
            listeners,
            tls_from,
            wake,
            worker,
            shutdown: shutdown.clone(),
            reload: Watch::new(reloads.clone(), i),
            want_peer: engine::want_peer(&config),
            max_conns: engine::worker_share(config.policy.max_conns, config.workers, i),
        });
    }
    let admin = match config.admin {
        Some(addr) => Some((
            admin::bind(addr)?,
            AdminState {
                metrics: metrics.clone(),
                draining: unready.clone(),
                root: Arc::new(Mutex::new(root(&config)?)),
                started: Instant::now(),
            },
        )),
        None => None,
    };
    let admin_root = admin.as_ref().map(|(_, state)| state.root.clone());
    if let Some(name) = &config.user {
        switch_user(name)?;
    }
    let chosen = engine::choose_backend(config.backend)?;

    let (done_tx, done_rx) = mpsc::channel::<io::Result<()>>();
    let (ready_tx, ready_rx) = mpsc::channel::<io::Result<String>>();
    let mut threads = Vec::new();
    for (i, setup) in setups.into_iter().enumerate() {
        let (ready, done) = (ready_tx.clone(), done_tx.clone());
        let chosen = match &chosen {
            Chosen::Uring => Chosen::Uring,
            Chosen::Epoll(why) => Chosen::Epoll(why.clone()),
        };
        let t = std::thread::Builder::new()
            .name(format!("ringserve-w{i}"))
            .spawn(move || {
                let result = engine::run_worker(i, setup, &chosen, ready);
                let _ = done.send(result);
            })?;
        threads.push(t);
    }
    drop(ready_tx);
    for _ in 0..threads.len() {
        match ready_rx.recv() {
            Ok(Ok(line)) => eprintln!("ringserve: {line}"),
            Ok(Err(e)) => return Err(e),
            Err(_) => break,
        }
    }
    for addr in &bound {
        eprintln!("ringserve: listening on {addr}");
    }
    for addr in &tls_bound {
        eprintln!("ringserve: listening for https on {addr}");
    }
    for note in &config.tls_notes {
        eprintln!("ringserve: {note}");
    }
    if !tls_bound.is_empty() {
        // Each worker probes for itself; say what the kernel offers.
        match sys::probe_ktls() {
            Ok(ciphers) => eprintln!(
                "ringserve: https: kernel TLS offload (kTLS) for {}: after its handshake a \
                 connection's records are made by the kernel, file bodies go out with sendfile",
                ciphers.names()
            ),
            Err(e) => eprintln!(
                "ringserve: https: no kernel TLS offload (TCP_ULP \"tls\": {e}): records are \
                 encrypted in user space"
            ),
        }
    }
    if let Some((listener, state)) = admin {
        admin::serve(listener, state)?;
    }

    let signals = shutdown.clone();
    let unready_at_signal = unready.clone();
    let mut reloader = Reloader::new(
        sources,
        config.clone(),
        shared,
        reopen.clone(),
        reloads,
        admin_root,
    );
    std::thread::Builder::new()
        .name("ringserve-signals".into())
        .spawn(move || loop {
            match sys::wait_signal() {
                SignalEvent::Shutdown => {
                    // The balancer sees /readyz fail first; connections are still accepted
                    // and served until the delay has passed, then the workers drain.
                    unready_at_signal.store(true, std::sync::atomic::Ordering::Release);
                    let delay = reloader.running().drain_delay;
                    if !delay.is_zero() {
                        eprintln!(
                            "ringserve: not ready; draining in {} ms (--drain-delay)",
                            delay.as_millis()
                        );
                        std::thread::sleep(delay);
                    }
                    return request_shutdown(&signals, &wakes);
                }
                SignalEvent::ReopenLogs => {
                    reopen.request();
                    wake_all(&wakes);
                }
                SignalEvent::Reload => reloader.reload(|| wake_all(&wakes)),
            }
        })?;

    let mut first_error = None;
    for _ in 0..threads.len() {
        if let Ok(Err(e)) = done_rx.recv() {
            if first_error.is_none() {
                // A worker failed: stop the others too rather than serve at reduced capacity.
                unready.store(true, std::sync::atomic::Ordering::Release);
                shutdown.request();
                first_error = Some(e);
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
    first_error.map_or(Ok(()), Err)
}

/// Asks the workers to drain, and wakes them so that they see it at once.
fn request_shutdown(shutdown: &Shutdown, wakes: &[OwnedFd]) {
    shutdown.request();
    wake_all(wakes);
}

/// Wakes every worker, which then looks at the shutdown flag, its log's reopen request and
/// the latest configuration.
fn wake_all(wakes: &[OwnedFd]) {
    for w in wakes {
        let _ = sys::eventfd_signal(w.as_fd());
    }
}

/// Opens a worker's access log.
fn access_log(config: &Config, reopen: &Reopen) -> io::Result<AccessLog> {
    AccessLog::open(&config.access_log, config.access_log_format, reopen.clone())
        .map_err(|e| io::Error::new(e.kind(), format!("access log: {e}")))
}

/// Drops root for `--user NAME` and says so on stderr.
fn switch_user(name: &str) -> io::Result<()> {
    let with_name = |e: io::Error| io::Error::new(e.kind(), format!("--user {name}: {e}"));
    let account = sys::lookup_user(name).map_err(with_name)?;
    match sys::switch_user(&account).map_err(with_name)? {
        sys::Switched::Dropped => eprintln!(
            "ringserve: running as user {name} (uid {}, gid {})",
            account.uid, account.gid
        ),
        sys::Switched::AlreadyUser => eprintln!("ringserve: already running as user {name}"),
    }
    Ok(())
}
