//! The I/O backends every behaviour test runs against, whether this kernel offers io_uring,
//! and the macro that runs one test body on each backend.

use std::sync::OnceLock;

/// The I/O backends every behaviour test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `--backend uring`
    Uring,
    /// `--backend epoll`
    Epoll,
}

impl Backend {
    /// The value of `--backend` selecting this backend.
    pub fn as_arg(self) -> &'static str {
        match self {
            Backend::Uring => "uring",
            Backend::Epoll => "epoll",
        }
    }
}

/// Whether this kernel lets the process set up an io_uring (Docker's default seccomp profile
/// and `kernel.io_uring_disabled` forbid it); the `uring` tests are skipped where it does not.
pub fn uring_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| io_uring::IoUring::new(2).is_ok())
}

/// Generates, for each named `fn name(backend: Backend)` of the test crate, the tests
/// `uring::name` and `epoll::name`, so each test body is written once.
#[allow(unused_macros)] // not every test crate runs the matrix
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $(#[test] fn $name() {
                if !crate::common::uring_available() {
                    eprintln!("io_uring is not available here: test skipped");
                    return;
                }
                super::$name(crate::common::Backend::Uring)
            })*
        }
        mod epoll {
            $(#[test] fn $name() { super::$name(crate::common::Backend::Epoll) })*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use backend_tests;
