//! Users: looking an account up and dropping root for it (`--user`).

use std::ffi::CString;
use std::io;

/// A user account from the password database.
#[derive(Debug)]
pub struct Account {
    /// Login name.
    pub name: CString,
    /// User id.
    pub uid: libc::uid_t,
    /// Primary group id.
    pub gid: libc::gid_t,
}

/// Looks `name` up with `getpwnam_r(3)` (so NSS sources such as LDAP work too).
pub fn lookup_user(name: &str) -> io::Result<Account> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name contains NUL"))?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: all-zero is a valid `struct passwd` (integers and null pointers).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `cname` is NUL-terminated, `pwd` and `found` are valid for writes, and
        // `buf` for `buf.len()` bytes; the strings `pwd` points to live in `buf`, which we do
        // not read through `pwd` after the call.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        match rc {
            0 if found.is_null() => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no user named {name}"),
                ))
            }
            0 => {
                return Ok(Account {
                    name: cname,
                    uid: pwd.pw_uid,
                    gid: pwd.pw_gid,
                })
            }
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// What [`switch_user`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switched {
    /// Root was dropped for the account.
    Dropped,
    /// The process already runs as the account: nothing to do.
    AlreadyUser,
}

/// Drops root for `account` (nginx `user`): the account's supplementary groups
/// (`initgroups`), then its group, then its user id, real, effective and saved alike, and
/// checks that root cannot be regained. glibc applies each change to every thread of the
/// process. A process that is not root can only "switch" to the user it already is.
pub fn switch_user(account: &Account) -> io::Result<Switched> {
    // SAFETY: plain syscall with no arguments.
    let euid = unsafe { libc::geteuid() };
    if euid == account.uid {
        return Ok(Switched::AlreadyUser);
    }
    if euid != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("only root can switch users (running as uid {euid})"),
        ));
    }
    let check = |rc: libc::c_int, what: &str| {
        if rc == 0 {
            Ok(())
        } else {
            let e = io::Error::last_os_error();
            Err(io::Error::new(e.kind(), format!("{what}: {e}")))
        }
    };
    let (uid, gid) = (account.uid, account.gid);
    // SAFETY: `account.name` is NUL-terminated; the other calls take plain integers.
    unsafe {
        check(libc::initgroups(account.name.as_ptr(), gid), "initgroups")?;
        check(libc::setresgid(gid, gid, gid), "setresgid")?;
        check(libc::setresuid(uid, uid, uid), "setresuid")?;
    }
    // SAFETY: plain syscall with an integer argument.
    if unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other(
            "root could be regained after switching users",
        ));
    }
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are valid for writes for the duration of the call.
    check(
        unsafe { libc::getresuid(&mut r, &mut e, &mut s) },
        "getresuid",
    )?;
    let (mut gr, mut ge, mut gs) = (0, 0, 0);
    // SAFETY: as above.
    check(
        unsafe { libc::getresgid(&mut gr, &mut ge, &mut gs) },
        "getresgid",
    )?;
    if [r, e, s] != [uid; 3] || [gr, ge, gs] != [gid; 3] {
        return Err(io::Error::other("user or group ids did not all change"));
    }
    Ok(Switched::Dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_users() {
        let root = lookup_user("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        let err = lookup_user("no-such-user-ringserve").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert!(lookup_user("a\0b").is_err());
    }

    #[test]
    fn switching_to_oneself_is_a_no_op() {
        // SAFETY: plain syscalls with no arguments.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let me = Account {
            name: CString::new("me").unwrap(),
            uid,
            gid,
        };
        assert_eq!(switch_user(&me).unwrap(), Switched::AlreadyUser);
    }
}
