//! The `wasi_snapshot_preview1` functions: names and Wasm signatures.

use wanco_state::ValType;

/// One function of `wasi_snapshot_preview1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum WasiFunc {
    ArgsGet,
    ArgsSizesGet,
    EnvironGet,
    EnvironSizesGet,
    ClockResGet,
    ClockTimeGet,
    FdAdvise,
    FdAllocate,
    FdClose,
    FdDatasync,
    FdFdstatGet,
    FdFdstatSetFlags,
    FdFdstatSetRights,
    FdFilestatGet,
    FdFilestatSetSize,
    FdFilestatSetTimes,
    FdPread,
    FdPrestatGet,
    FdPrestatDirName,
    FdPwrite,
    FdRead,
    FdReaddir,
    FdRenumber,
    FdSeek,
    FdSync,
    FdTell,
    FdWrite,
    PathCreateDirectory,
    PathFilestatGet,
    PathFilestatSetTimes,
    PathLink,
    PathOpen,
    PathReadlink,
    PathRemoveDirectory,
    PathRename,
    PathSymlink,
    PathUnlinkFile,
    PollOneoff,
    ProcExit,
    ProcRaise,
    SchedYield,
    RandomGet,
    SockAccept,
    SockRecv,
    SockSend,
    SockShutdown,
}

use ValType::{I32, I64};

const I: &[ValType] = &[I32];
const II: &[ValType] = &[I32, I32];
const III: &[ValType] = &[I32, I32, I32];
const IIII: &[ValType] = &[I32, I32, I32, I32];
const IIIII: &[ValType] = &[I32, I32, I32, I32, I32];
const IIIIII: &[ValType] = &[I32, I32, I32, I32, I32, I32];
const IIIIIII: &[ValType] = &[I32, I32, I32, I32, I32, I32, I32];
const ERRNO: &[ValType] = &[I32];
const NONE: &[ValType] = &[];

impl WasiFunc {
    /// Every function, in the order of the preview1 witx.
    pub const ALL: &'static [WasiFunc] = &[
        WasiFunc::ArgsGet,
        WasiFunc::ArgsSizesGet,
        WasiFunc::EnvironGet,
        WasiFunc::EnvironSizesGet,
        WasiFunc::ClockResGet,
        WasiFunc::ClockTimeGet,
        WasiFunc::FdAdvise,
        WasiFunc::FdAllocate,
        WasiFunc::FdClose,
        WasiFunc::FdDatasync,
        WasiFunc::FdFdstatGet,
        WasiFunc::FdFdstatSetFlags,
        WasiFunc::FdFdstatSetRights,
        WasiFunc::FdFilestatGet,
        WasiFunc::FdFilestatSetSize,
        WasiFunc::FdFilestatSetTimes,
        WasiFunc::FdPread,
        WasiFunc::FdPrestatGet,
        WasiFunc::FdPrestatDirName,
        WasiFunc::FdPwrite,
        WasiFunc::FdRead,
        WasiFunc::FdReaddir,
        WasiFunc::FdRenumber,
        WasiFunc::FdSeek,
        WasiFunc::FdSync,
        WasiFunc::FdTell,
        WasiFunc::FdWrite,
        WasiFunc::PathCreateDirectory,
        WasiFunc::PathFilestatGet,
        WasiFunc::PathFilestatSetTimes,
        WasiFunc::PathLink,
        WasiFunc::PathOpen,
        WasiFunc::PathReadlink,
        WasiFunc::PathRemoveDirectory,
        WasiFunc::PathRename,
        WasiFunc::PathSymlink,
        WasiFunc::PathUnlinkFile,
        WasiFunc::PollOneoff,
        WasiFunc::ProcExit,
        WasiFunc::ProcRaise,
        WasiFunc::SchedYield,
        WasiFunc::RandomGet,
        WasiFunc::SockAccept,
        WasiFunc::SockRecv,
        WasiFunc::SockSend,
        WasiFunc::SockShutdown,
    ];

    /// The import name (field) of this function, e.g. `"fd_write"`.
    pub fn name(self) -> &'static str {
        match self {
            WasiFunc::ArgsGet => "args_get",
            WasiFunc::ArgsSizesGet => "args_sizes_get",
            WasiFunc::EnvironGet => "environ_get",
            WasiFunc::EnvironSizesGet => "environ_sizes_get",
            WasiFunc::ClockResGet => "clock_res_get",
            WasiFunc::ClockTimeGet => "clock_time_get",
            WasiFunc::FdAdvise => "fd_advise",
            WasiFunc::FdAllocate => "fd_allocate",
            WasiFunc::FdClose => "fd_close",
            WasiFunc::FdDatasync => "fd_datasync",
            WasiFunc::FdFdstatGet => "fd_fdstat_get",
            WasiFunc::FdFdstatSetFlags => "fd_fdstat_set_flags",
            WasiFunc::FdFdstatSetRights => "fd_fdstat_set_rights",
            WasiFunc::FdFilestatGet => "fd_filestat_get",
            WasiFunc::FdFilestatSetSize => "fd_filestat_set_size",
            WasiFunc::FdFilestatSetTimes => "fd_filestat_set_times",
            WasiFunc::FdPread => "fd_pread",
            WasiFunc::FdPrestatGet => "fd_prestat_get",
            WasiFunc::FdPrestatDirName => "fd_prestat_dir_name",
            WasiFunc::FdPwrite => "fd_pwrite",
            WasiFunc::FdRead => "fd_read",
            WasiFunc::FdReaddir => "fd_readdir",
            WasiFunc::FdRenumber => "fd_renumber",
            WasiFunc::FdSeek => "fd_seek",
            WasiFunc::FdSync => "fd_sync",
            WasiFunc::FdTell => "fd_tell",
            WasiFunc::FdWrite => "fd_write",
            WasiFunc::PathCreateDirectory => "path_create_directory",
            WasiFunc::PathFilestatGet => "path_filestat_get",
            WasiFunc::PathFilestatSetTimes => "path_filestat_set_times",
            WasiFunc::PathLink => "path_link",
            WasiFunc::PathOpen => "path_open",
            WasiFunc::PathReadlink => "path_readlink",
            WasiFunc::PathRemoveDirectory => "path_remove_directory",
            WasiFunc::PathRename => "path_rename",
            WasiFunc::PathSymlink => "path_symlink",
            WasiFunc::PathUnlinkFile => "path_unlink_file",
            WasiFunc::PollOneoff => "poll_oneoff",
            WasiFunc::ProcExit => "proc_exit",
            WasiFunc::ProcRaise => "proc_raise",
            WasiFunc::SchedYield => "sched_yield",
            WasiFunc::RandomGet => "random_get",
            WasiFunc::SockAccept => "sock_accept",
            WasiFunc::SockRecv => "sock_recv",
            WasiFunc::SockSend => "sock_send",
            WasiFunc::SockShutdown => "sock_shutdown",
        }
    }

    /// The function named `name` (e.g. `"fd_write"`), if preview1 has one.
    pub fn from_name(name: &str) -> Option<WasiFunc> {
        WasiFunc::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// The Wasm signature `(params, results)`. Every function returns
    /// `[i32]` (an `errno`) except `proc_exit`, which returns nothing.
    pub fn signature(self) -> (&'static [ValType], &'static [ValType]) {
        let params: &'static [ValType] = match self {
            WasiFunc::ArgsGet | WasiFunc::ArgsSizesGet => II,
            WasiFunc::EnvironGet | WasiFunc::EnvironSizesGet => II,
            WasiFunc::ClockResGet => II,
            WasiFunc::ClockTimeGet => &[I32, I64, I32],
            WasiFunc::FdAdvise => &[I32, I64, I64, I32],
            WasiFunc::FdAllocate => &[I32, I64, I64],
            WasiFunc::FdClose | WasiFunc::FdDatasync | WasiFunc::FdSync => I,
            WasiFunc::FdFdstatGet | WasiFunc::FdFdstatSetFlags => II,
            WasiFunc::FdFdstatSetRights => &[I32, I64, I64],
            WasiFunc::FdFilestatGet => II,
            WasiFunc::FdFilestatSetSize => &[I32, I64],
            WasiFunc::FdFilestatSetTimes => &[I32, I64, I64, I32],
            WasiFunc::FdPread | WasiFunc::FdPwrite => &[I32, I32, I32, I64, I32],
            WasiFunc::FdPrestatGet => II,
            WasiFunc::FdPrestatDirName => III,
            WasiFunc::FdRead | WasiFunc::FdWrite => IIII,
            WasiFunc::FdReaddir => &[I32, I32, I32, I64, I32],
            WasiFunc::FdRenumber => II,
            WasiFunc::FdSeek => &[I32, I64, I32, I32],
            WasiFunc::FdTell => II,
            WasiFunc::PathCreateDirectory => III,
            WasiFunc::PathFilestatGet => IIIII,
            WasiFunc::PathFilestatSetTimes => &[I32, I32, I32, I32, I64, I64, I32],
            WasiFunc::PathLink => IIIIIII,
            WasiFunc::PathOpen => &[I32, I32, I32, I32, I32, I64, I64, I32, I32],
            WasiFunc::PathReadlink => IIIIII,
            WasiFunc::PathRemoveDirectory => III,
            WasiFunc::PathRename => IIIIII,
            WasiFunc::PathSymlink => IIIII,
            WasiFunc::PathUnlinkFile => III,
            WasiFunc::PollOneoff => IIII,
            WasiFunc::ProcExit | WasiFunc::ProcRaise => I,
            WasiFunc::SchedYield => NONE,
            WasiFunc::RandomGet => II,
            WasiFunc::SockAccept => III,
            WasiFunc::SockRecv => IIIIII,
            WasiFunc::SockSend => IIIII,
            WasiFunc::SockShutdown => II,
        };
        let results = if self == WasiFunc::ProcExit {
            NONE
        } else {
            ERRNO
        };
        (params, results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(WasiFunc::ALL.len(), 46);
        for &f in WasiFunc::ALL {
            assert_eq!(WasiFunc::from_name(f.name()), Some(f));
        }
        assert_eq!(WasiFunc::from_name("fd_write"), Some(WasiFunc::FdWrite));
        assert_eq!(WasiFunc::from_name("nope"), None);
    }

    #[test]
    fn signatures_match_preview1() {
        // As wasi-libc imports them (checked with wasm2wat).
        assert_eq!(
            WasiFunc::FdSeek.signature(),
            (&[I32, I64, I32, I32][..], &[I32][..])
        );
        assert_eq!(WasiFunc::ClockTimeGet.signature().0, &[I32, I64, I32]);
        assert_eq!(
            WasiFunc::PathOpen.signature().0,
            &[I32, I32, I32, I32, I32, I64, I64, I32, I32]
        );
        assert_eq!(WasiFunc::FdPread.signature().0, &[I32, I32, I32, I64, I32]);
        assert_eq!(
            WasiFunc::PathFilestatSetTimes.signature().0,
            &[I32, I32, I32, I32, I64, I64, I32]
        );
        assert_eq!(WasiFunc::ProcExit.signature(), (&[I32][..], &[][..]));
        assert_eq!(WasiFunc::SchedYield.signature(), (&[][..], &[I32][..]));
    }
}
