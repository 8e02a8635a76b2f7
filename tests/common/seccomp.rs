//! Running code under a seccomp filter that denies chosen system calls, to exercise the
//! server's fallbacks where the kernel refuses a feature.

use std::thread;

/// Runs `f` on a fresh thread whose seccomp filter makes each of `syscalls` fail with EPERM.
/// Filters are per thread and inherited by children, so a server spawned inside `f` runs
/// under it while the rest of the test process is unaffected.
pub fn with_denied<T: Send + 'static>(
    syscalls: &[i64],
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};
    let rules = syscalls.iter().map(|&nr| (nr, vec![])).collect();
    thread::spawn(move || {
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
            std::env::consts::ARCH.try_into().expect("supported arch"),
        )
        .expect("filter");
        let program: BpfProgram = filter.try_into().expect("compile filter");
        seccompiler::apply_filter(&program).expect("apply filter");
        f()
    })
    .join()
    .expect("filtered thread")
}
