//! The switch from root to `User`/`Group` of `AService.cfg`: names are resolved against the
//! system databases at start ([`resolve`]), and [`drop_to`] sets the supplementary groups,
//! the group and the user, then checks the result. It must run after the listeners are
//! bound and the logs opened, and before any thread that serves clients starts.
//!
//! The glibc wrappers `setgroups`/`setgid`/`setuid` apply the change to every thread of the
//! process (glibc's setxid broadcast); the raw system calls would change only the calling
//! thread, so only the wrappers are used here.

use crate::config::Principal;
use std::ffi::{CStr, CString};
use std::fmt;

/// Whom to run as, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: libc::uid_t,
    /// Group id.
    pub gid: libc::gid_t,
    /// The user's name when the password database knows it (for its supplementary groups).
    pub name: Option<String>,
    /// As configured, for messages (`User mmp`, `User 65534`).
    pub shown: String,
}

/// Why the identity cannot be resolved or taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivilegeError {
    /// `User` or `Group` names nobody the system knows.
    Unknown(String),
    /// A numeric `User` unknown to the password database and no `Group` to go with it.
    NoGroup(u32),
    /// The process runs unprivileged as someone else.
    NotRoot {
        /// The effective uid mmp runs as.
        uid: u32,
        /// `User`/`Group` as configured.
        wanted: String,
    },
    /// A call failed.
    Call(&'static str, String),
    /// The ids after the switch are not the wanted ones.
    Unverified(String),
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivilegeError::Unknown(what) => write!(f, "{what} is not known to the system"),
            PrivilegeError::NoGroup(uid) => write!(
                f,
                "User {uid} has no entry in the password database; set Group as well"
            ),
            PrivilegeError::NotRoot { uid, wanted } => write!(
                f,
                "running as uid {uid}, which cannot switch to {wanted}; start mmp as root \
                 or as that user"
            ),
            PrivilegeError::Call(call, e) => write!(f, "{call} failed: {e}"),
            PrivilegeError::Unverified(what) => write!(f, "after the switch {what}"),
        }
    }
}

impl std::error::Error for PrivilegeError {}

/// What [`drop_to`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// The process changed user and groups.
    Switched,
    /// The process already ran as that user and group (e.g. started by systemd as `mmp`).
    AlreadyThere,
}

/// Resolves `User` and `Group`; `None` when neither is set (mmp keeps its identity).
/// A `Group` alone keeps the user and changes the group.
pub fn resolve(
    user: Option<&Principal>,
    group: Option<&Principal>,
) -> Result<Option<Identity>, PrivilegeError> {
    let gid = group.map(resolve_group).transpose()?;
    let Some(user) = user else {
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        return Ok(gid.map(|gid| Identity {
            uid,
            gid,
            name: None,
            shown: format!("Group {}", group.map(|g| g.to_string()).unwrap_or_default()),
        }));
    };
    let entry = match user {
        Principal::Name(n) => {
            Some(passwd_by_name(n)?.ok_or_else(|| PrivilegeError::Unknown(format!("User {n}")))?)
        }
        Principal::Id(id) => passwd_by_uid(*id)?,
    };
    let (uid, primary, name) = match (entry, user) {
        (Some(e), _) => (e.0, Some(e.1), Some(e.2)),
        (None, Principal::Id(id)) => (*id, None, None),
        (None, Principal::Name(n)) => return Err(PrivilegeError::Unknown(format!("User {n}"))),
    };
    let gid = gid.or(primary).ok_or(PrivilegeError::NoGroup(uid))?;
    let mut shown = format!("User {user}");
    if let Some(g) = group {
        shown.push_str(&format!(" Group {g}"));
    }
    Ok(Some(Identity {
        uid,
        gid,
        name,
        shown,
    }))
}

fn resolve_group(group: &Principal) -> Result<libc::gid_t, PrivilegeError> {
    match group {
        Principal::Id(id) => Ok(*id),
        Principal::Name(n) => {
            group_by_name(n)?.ok_or_else(|| PrivilegeError::Unknown(format!("Group {n}")))
        }
    }
}

/// Runs `call` with a growing buffer while it reports ERANGE.
fn with_buffer<T>(
    what: &'static str,
    mut call: impl FnMut(&mut [libc::c_char]) -> (libc::c_int, Option<T>),
) -> Result<Option<T>, PrivilegeError> {
    let mut size = 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        match call(&mut buf) {
            (0, found) => return Ok(found),
            (libc::ERANGE, _) if size < 1 << 20 => size *= 4,
            (rc, _) => {
                return Err(PrivilegeError::Call(
                    what,
                    std::io::Error::from_raw_os_error(rc).to_string(),
                ))
            }
        }
    }
}

fn c_name(name: &str, what: &str) -> Result<CString, PrivilegeError> {
    CString::new(name).map_err(|_| PrivilegeError::Unknown(format!("{what} {name:?}")))
}

/// (uid, primary gid, name) of a password entry.
type PasswdEntry = (libc::uid_t, libc::gid_t, String);

fn passwd_by_name(name: &str) -> Result<Option<PasswdEntry>, PrivilegeError> {
    let c = c_name(name, "User")?;
    passwd_lookup("getpwnam_r", |pw, buf, out| {
        // SAFETY: all pointers are valid for the call; buf's length is passed.
        unsafe { libc::getpwnam_r(c.as_ptr(), pw, buf.as_mut_ptr(), buf.len(), out) }
    })
}

fn passwd_by_uid(uid: u32) -> Result<Option<PasswdEntry>, PrivilegeError> {
    passwd_lookup("getpwuid_r", |pw, buf, out| {
        // SAFETY: as in passwd_by_name.
        unsafe { libc::getpwuid_r(uid, pw, buf.as_mut_ptr(), buf.len(), out) }
    })
}

fn passwd_lookup(
    what: &'static str,
    call: impl Fn(*mut libc::passwd, &mut [libc::c_char], *mut *mut libc::passwd) -> libc::c_int,
) -> Result<Option<PasswdEntry>, PrivilegeError> {
    with_buffer(what, |buf| {
        // SAFETY: passwd is plain data; the call fills it and points `out` at it or null.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pw, buf, &mut out);
        if rc != 0 || out.is_null() {
            return (rc, None);
        }
        // SAFETY: on success pw_name points into buf, NUL-terminated.
        let name = unsafe { CStr::from_ptr(pw.pw_name) }
            .to_string_lossy()
            .into_owned();
        (0, Some((pw.pw_uid, pw.pw_gid, name)))
    })
}

fn group_by_name(name: &str) -> Result<Option<libc::gid_t>, PrivilegeError> {
    let c = c_name(name, "Group")?;
    with_buffer("getgrnam_r", |buf| {
        // SAFETY: group is plain data; pointers are valid for the call.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        let rc =
            unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut out) };
        if rc != 0 || out.is_null() {
            return (rc, None);
        }
        (0, Some(gr.gr_gid))
    })
}

/// The supplementary groups for `id`: the user's groups from the group database, or just
/// the group when the user has no name.
fn supplementary(id: &Identity) -> Result<Vec<libc::gid_t>, PrivilegeError> {
    let Some(name) = &id.name else {
        return Ok(vec![id.gid]);
    };
    let c = c_name(name, "User")?;
    let mut n: libc::c_int = 32;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let before = n;
        // SAFETY: groups has room for n entries; n is updated with the real count.
        let rc = unsafe { libc::getgrouplist(c.as_ptr(), id.gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n as usize);
            return Ok(groups);
        }
        if n <= before {
            n = before * 2;
        }
        if n > 65_536 {
            return Err(PrivilegeError::Call(
                "getgrouplist",
                "too many groups".into(),
            ));
        }
    }
}

fn last_error(call: &'static str) -> PrivilegeError {
    PrivilegeError::Call(call, std::io::Error::last_os_error().to_string())
}

/// Takes `id`: supplementary groups, group, then user, and checks that real and effective
/// ids are the wanted ones and that root cannot be regained. Returns
/// [`Switch::AlreadyThere`] without a call when the process already runs as `id`.
pub fn drop_to(id: &Identity) -> Result<Switch, PrivilegeError> {
    // SAFETY: these getters cannot fail.
    let (uid, euid, gid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    if (uid, euid, gid, egid) == (id.uid, id.uid, id.gid, id.gid) {
        return Ok(Switch::AlreadyThere);
    }
    if euid != 0 {
        return Err(PrivilegeError::NotRoot {
            uid: euid,
            wanted: id.shown.clone(),
        });
    }
    let groups = supplementary(id)?;
    // SAFETY: glibc wrappers (applied to all threads); groups holds groups.len() entries.
    unsafe {
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            return Err(last_error("setgroups"));
        }
        if libc::setgid(id.gid) != 0 {
            return Err(last_error("setgid"));
        }
        if libc::setuid(id.uid) != 0 {
            return Err(last_error("setuid"));
        }
    }
    verify(id)?;
    Ok(Switch::Switched)
}

fn verify(id: &Identity) -> Result<(), PrivilegeError> {
    // SAFETY: these getters cannot fail.
    let now = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    if now != (id.uid, id.uid, id.gid, id.gid) {
        return Err(PrivilegeError::Unverified(format!(
            "uid/euid/gid/egid are {now:?}, not {} and {}",
            id.uid, id.gid
        )));
    }
    // SAFETY: a failing setuid(0) changes nothing; a succeeding one is the error reported.
    if id.uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(PrivilegeError::Unverified("root could be regained".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_numeric_ids_resolve() {
        let root = resolve(Some(&Principal::Name("root".into())), None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (root.uid, root.gid, root.name.as_deref()),
            (0, 0, Some("root"))
        );
        let id = resolve(Some(&Principal::Id(0)), Some(&Principal::Id(4242)))
            .unwrap()
            .unwrap();
        assert_eq!((id.uid, id.gid), (0, 4242));
        assert_eq!(resolve(None, None), Ok(None));
    }

    #[test]
    fn unknown_names_are_errors() {
        let user = Principal::Name("no-such-user-mmp".into());
        let e = resolve(Some(&user), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "User no-such-user-mmp is not known to the system"
        );
        let group = Principal::Name("no-such-group-mmp".into());
        let e = resolve(None, Some(&group)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Group no-such-group-mmp is not known to the system"
        );
        let e = resolve(Some(&Principal::Id(3_999_999)), None).unwrap_err();
        assert_eq!(e, PrivilegeError::NoGroup(3_999_999));
    }

    #[test]
    fn the_current_identity_needs_no_switch() {
        // SAFETY: getters cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let id = Identity {
            uid,
            gid,
            name: None,
            shown: "User self".into(),
        };
        // Only when real and effective ids agree, as they do under cargo test.
        assert_eq!(drop_to(&id), Ok(Switch::AlreadyThere));
    }
}
