//! Process entry of a compiled program (`main` calls [`wanco_program_main`]).
//!
//! ```text
//! PROG [--dir HOST[::GUEST]]... [--env KEY[=VALUE]]... [--tcplisten HOST:PORT]... [--checkpoint-after-points N]
//!      [--checkpoint-file PATH] [--count-points] [--] [ARGS...]
//! PROG --restore SNAP [--checkpoint-after-points N] [--checkpoint-file PATH]
//! ```

use crate::instance::{Descriptor, Instance};
use crate::cr as checkpoint; // the checkpoint-and-restore API
use crate::signals;
use crate::wasi_host;
use std::ffi::{c_char, CStr};
use wanco_state::wasi::Preopen;
use wanco_wasi::{WasiConfig, WasiCtx};

/// Stack size of the thread that runs Wasm code.
pub const WASM_STACK: usize = 64 << 20;

/// Command-line options of a compiled program.
#[derive(Debug, Default)]
pub struct Options {
    /// Guest arguments (without argv\[0\]).
    pub args: Vec<String>,
    /// `--env` pairs.
    pub env: Vec<(String, String)>,
    /// `--dir` preopens.
    pub preopens: Vec<Preopen>,
    /// `--tcplisten` addresses: listening sockets given to the guest after
    /// the preopened directories.
    pub listen: Vec<String>,
    /// `--restore SNAP`.
    pub restore: Option<std::path::PathBuf>,
    /// Checkpointing options.
    pub cr: crate::cr::CrOptions,
    /// `--help`/`-h`: print the usage on stdout and exit 0.
    pub help: bool,
    /// `--control[=PATH]`: listen for control requests (`crate::cr::control`);
    /// `Some(None)` on the default path.
    pub control: Option<Option<std::path::PathBuf>>,
    /// `--restore-dir GUEST=HOST`: with `--restore`, the preopen `GUEST`
    /// is the host directory `HOST` here (a migration's `--dir-map`).
    pub restore_dirs: Vec<(String, String)>,
    /// `--gate-fd N` (used by `wanco agent`): once a restore is ready to
    /// run, write `R` to fd N and run only after reading `G` from it; then,
    /// just before the first instruction of the restored code, write
    /// `T<ns>\n` (CLOCK_REALTIME, nanoseconds) and close it.
    pub gate_fd: Option<i32>,
    /// `--memory-image FILE` (used by `wanco agent` after a pre-copy
    /// migration): with `--restore` of an incremental snapshot, the memory
    /// of its parent as a memory image (`wanco_state::image`), mapped
    /// copy-on-write under the snapshot's own pages.
    pub memory_image: Option<std::path::PathBuf>,
    /// `--page-server-fd N` (used by `wanco agent` in a post-copy
    /// migration): with `--restore` of a snapshot that stores no pages, the
    /// memory comes from fd N (`crate::cr::postcopy`).
    pub page_server_fd: Option<i32>,
    /// `--await-snapshot` (used by `wanco agent`): with `--restore` and
    /// `--gate-fd`, the process starts
    /// before its snapshot is complete and reads it only once `S` comes on
    /// the gate fd — the process start is not part of the downtime.
    pub await_snapshot: bool,
}

const USAGE: &str = "usage: PROGRAM [--dir HOST[::GUEST]]... [--env KEY[=VALUE]]... [--tcplisten HOST:PORT]... [--control[=PATH]] [--checkpoint-after-points N] [--checkpoint-file PATH] [--count-points] [--] [ARGS...]
       PROGRAM --restore SNAP [--memory-image FILE] [--restore-dir GUEST=HOST]... [--checkpoint-after-points N] [--checkpoint-file PATH]
       PROGRAM --help
--control[=PATH] listens for checkpoint requests on a Unix socket (see docs/cli.md).
SIGUSR1 writes a checkpoint at a migration point (within 65536 points) and exits 0.";

/// Parse the runtime's options; everything after `--` or the first
/// non-option argument goes to the guest.
pub fn parse_args(argv: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut i = 0;
    while i < argv.len() {
        let a = &argv[i];
        let value = |i: &mut usize, name: &str| -> Result<String, String> {
            if let Some(v) = a.strip_prefix(&format!("{name}=")) {
                return Ok(v.to_string());
            }
            *i += 1;
            argv.get(*i).cloned().ok_or_else(|| format!("option {name} needs a value\n{USAGE}"))
        };
        if a == "--" {
            o.args.extend(argv[i + 1..].iter().cloned());
            break;
        } else if a == "--dir" || a.starts_with("--dir=") {
            let v = value(&mut i, "--dir")?;
            o.preopens.push(wanco_wasi::parse_dir(&v));
        } else if a == "--tcplisten" || a.starts_with("--tcplisten=") {
            o.listen.push(value(&mut i, "--tcplisten")?);
        } else if a == "--env" || a.starts_with("--env=") {
            let v = value(&mut i, "--env")?;
            o.env.push(wanco_wasi::parse_env(&v));
        } else if a == "--restore" || a.starts_with("--restore=") {
            if o.restore.is_some() {
                return Err("--restore given twice: a program continues from one snapshot".into());
            }
            o.restore = Some(value(&mut i, "--restore")?.into());
        } else if a == "--checkpoint-file" || a.starts_with("--checkpoint-file=") {
            if o.cr.file.is_some() {
                return Err("--checkpoint-file given twice".into());
            }
            o.cr.file = Some(value(&mut i, "--checkpoint-file")?.into());
        } else if a == "--checkpoint-after-points" || a.starts_with("--checkpoint-after-points=") {
            if o.cr.after_points.is_some() {
                return Err("--checkpoint-after-points given twice".into());
            }
            let v = value(&mut i, "--checkpoint-after-points")?;
            let n: u64 = v.parse().map_err(|_| format!("--checkpoint-after-points needs a positive number, got `{v}`"))?;
            if n == 0 {
                return Err("--checkpoint-after-points counts from 1".into());
            }
            if let Some(why) = wanco_state::snapshot::checkpoint_target_problem(n) {
                return Err(why);
            }
            o.cr.after_points = Some(n);
        } else if a == "--control" || a.starts_with("--control=") {
            if o.control.is_some() {
                return Err("--control given twice".into());
            }
            o.control = Some(a.strip_prefix("--control=").map(std::path::PathBuf::from));
        } else if a == "--restore-dir" || a.starts_with("--restore-dir=") {
            let v = value(&mut i, "--restore-dir")?;
            let (g, h) = v.split_once('=').ok_or_else(|| format!("--restore-dir needs GUEST=HOST, got `{v}`"))?;
            o.restore_dirs.push((g.to_string(), h.to_string()));
        } else if a == "--memory-image" || a.starts_with("--memory-image=") {
            if o.memory_image.is_some() {
                return Err("--memory-image given twice".into());
            }
            o.memory_image = Some(value(&mut i, "--memory-image")?.into());
        } else if a == "--page-server-fd" || a.starts_with("--page-server-fd=") {
            let v = value(&mut i, "--page-server-fd")?;
            o.page_server_fd = Some(v.parse().map_err(|_| format!("--page-server-fd needs a file descriptor number, got `{v}`"))?);
        } else if a == "--gate-fd" || a.starts_with("--gate-fd=") {
            let v = value(&mut i, "--gate-fd")?;
            o.gate_fd = Some(v.parse().map_err(|_| format!("--gate-fd needs a file descriptor number, got `{v}`"))?);
        } else if a == "--await-snapshot" {
            o.await_snapshot = true;
        } else if a == "--count-points" {
            o.cr.count_points = true;
        } else if a == "--help" || a == "-h" {
            // Asked for: the usage goes to stdout, exit 0 (as any tool's --help).
            o.help = true;
            return Ok(o);
        } else if a.starts_with("--") {
            return Err(format!("unknown option `{a}`\n{USAGE}"));
        } else {
            o.args.extend(argv[i..].iter().cloned());
            break;
        }
        i += 1;
    }
    Ok(o)
}

/// A snapshot read for `--restore`, checked against the module.
struct Restoring {
    path: std::path::PathBuf,
    snap: wanco_state::snapshot::Snapshot,
    /// The memory, still compressed (installed page by page).
    packed: Option<wanco_state::snapshot::PackedMemory>,
    /// The module's metadata, read to check the snapshot; handed on to the
    /// instantiation.
    info: Option<wanco_state::module::ModuleInfo>,
    /// `--memory-image`: the file and the pages it covers (its header
    /// checked against the snapshot).
    image: Option<(std::fs::File, u32)>,
}

/// The memory image of `--memory-image path` for the incremental snapshot
/// `snap` (memory `packed`, parent `parent`): opened, its header read and
/// checked against the snapshot.
fn open_image(
    path: &std::path::Path,
    snap: &wanco_state::snapshot::Snapshot,
    packed: Option<&wanco_state::snapshot::PackedMemory>,
    parent: Option<[u8; 32]>,
) -> Result<(std::fs::File, u32), String> {
    use std::os::unix::fs::FileExt;
    let Some(parent) = parent else {
        return Err("the snapshot is a full one: a memory image goes only under an incremental snapshot (format version 3)".into());
    };
    let Some(m) = packed else { return Err("the snapshot has no memory to lay over the image".into()) };
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let mut head = [0u8; wanco_state::image::IMAGE_HEADER_LEN];
    let n = f.read_at(&mut head, 0).map_err(|e| format!("cannot read it: {e}"))?;
    let h = wanco_state::image::ImageHeader::decode(&head[..n]).map_err(|e| e.to_string())?;
    h.check_for(&snap.module_hash, &parent, m.pages)?;
    Ok((f, h.pages))
}

/// Refuse a snapshot: `cannot restore `PATH`: WHY`, exit 2 (or, if its
/// checksum was not compared yet and does not match, that it is damaged).
fn refuse(path: &std::path::Path, why: &dyn std::fmt::Display) -> ! {
    if let Err(damaged) = crate::cr::pager::verify_before_refusing() {
        fail(&format!("cannot restore `{}`: {damaged}", path.display()), 2)
    }
    fail(&format!("cannot restore `{}`: {why}", path.display()), 2)
}

fn fail(msg: &str, code: i32) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(code)
}

/// Tell fd `fd` the program is ready to run (`R`) and wait for `G`; anything
/// else (or the fd closing) ends the process with exit 75 before a single
/// Wasm instruction ran.
fn gate(fd: i32) {
    // Everything the program does must come after the memory is whole —
    // except in a post-copy restore: the program runs while its pages
    // come, and waits for them (and for the release) before any host call.
    if !crate::cr::postcopy::started() {
        crate::cr::pager::settle();
    }
    let b = [b'R'];
    // SAFETY: writing one byte from a local buffer.
    let ok = unsafe { libc::write(fd, b.as_ptr().cast(), 1) } == 1 && read_byte(fd) == Some(b'G');
    if !ok {
        eprintln!("note: the restore was cancelled before the program ran");
        std::process::exit(75)
    }
    // Closed once the restored code is about to run, after saying when.
    checkpoint::timing::report_resume_to(fd);
}

/// `--await-snapshot`: wait for `S` on the gate fd `fd` (the snapshot is
/// complete); anything else, or the fd closing (the migration failed or the
/// agent is gone), ends the process with exit 75 before it read anything.
fn await_snapshot(fd: i32) {
    if read_byte(fd) != Some(b'S') {
        std::process::exit(75)
    }
}

/// One byte read from fd `fd` (retried when a signal interrupts the read);
/// `None` at its end or on an error.
fn read_byte(fd: i32) -> Option<u8> {
    let mut b = [0u8];
    loop {
        // SAFETY: reading one byte into a local buffer.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        if n == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return (n == 1).then_some(b[0]);
    }
}

/// Entry of a compiled program.
///
/// # Safety
/// `argv` must hold `argc` valid C strings; `desc` must be the descriptor the
/// compiler emitted.
#[no_mangle]
pub unsafe extern "C" fn wanco_program_main(argc: i32, argv: *const *const c_char, desc: &'static Descriptor) -> i32 {
    let argv: Vec<String> = (0..argc as usize)
        // SAFETY: guaranteed by the caller (the C runtime's argv).
        .map(|i| unsafe { CStr::from_ptr(*argv.add(i)) }.to_string_lossy().into_owned())
        .collect();
    let prog = argv.first().cloned().unwrap_or_else(|| "wasm".into());
    crate::cpu::require_baseline();
    signals::ignore_sigpipe();
    if desc.has_crmeta() {
        // Before anything else: a SIGUSR1 during start-up or a restore is
        // served once the program runs, instead of killing it.
        checkpoint::install_signal_handler();
    }
    let opts = match parse_args(&argv[1..]) {
        Ok(o) => o,
        Err(m) => fail(&m, 2),
    };
    if opts.help {
        println!("{USAGE}");
        std::process::exit(0);
    }
    if let Some(f) = &opts.cr.file {
        // Found out now, not when the checkpoint is due.
        if let Some(why) = wanco_state::snapshot::checkpoint_file_problem(f) {
            fail(&format!("--checkpoint-file {}: {why}", f.display()), 2);
        }
    }
    if opts.await_snapshot {
        match (&opts.restore, opts.gate_fd) {
            (Some(_), Some(fd)) => await_snapshot(fd),
            _ => fail("--await-snapshot needs --restore and --gate-fd", 2),
        }
    }
    let restore = match &opts.restore {
        None => None,
        Some(path) => {
            if !opts.args.is_empty() || !opts.env.is_empty() || !opts.preopens.is_empty() || !opts.listen.is_empty() {
                eprintln!("note: --dir, --env, --tcplisten and guest arguments are ignored with --restore: they come from the snapshot");
            }
            checkpoint::restore_started();
            if let Some(fd) = opts.page_server_fd {
                crate::cr::postcopy::set_page_server(fd);
            }
            let file = crate::memory::read_file(path).unwrap_or_else(|e| refuse(path, &e));
            checkpoint::restore_mark("read");
            // The checksum is compared while the program already runs
            // (`crate::cr::pager`), or before anything else where it does not.
            // Over a memory image, at once (the snapshot is small: the pages
            // written since the image's snapshot).
            let (snap, packed, image) = match &opts.memory_image {
                None => {
                    let (snap, packed, checksum) = wanco_state::snapshot::decode_shared(file, wanco_state::snapshot::Checksum::Later)
                        .unwrap_or_else(|e| refuse(path, &e));
                    if let Some(c) = checksum {
                        crate::cr::pager::defer_checksum(c);
                    }
                    (snap, packed, None)
                }
                Some(img) => {
                    let (snap, packed, _, parent) = wanco_state::snapshot::decode_shared_link(file, wanco_state::snapshot::Checksum::Now)
                        .unwrap_or_else(|e| refuse(path, &e));
                    let image = open_image(img, &snap, packed.as_ref(), parent).unwrap_or_else(|e| refuse(path, &format!("--memory-image {}: {e}", img.display())));
                    (snap, packed, Some(image))
                }
            };
            checkpoint::restore_mark("decode");
            let info = Instance::module_info(desc).unwrap_or_else(|e| refuse(path, &e));
            checkpoint::restore_mark("module info");
            if let Err(e) = snap.check_module(&info.hash) {
                refuse(path, &e)
            }
            let mut snap = snap;
            for (guest, host) in &opts.restore_dirs {
                match snap.wasi.preopens.iter_mut().find(|p| &p.guest == guest) {
                    Some(p) => p.host = host.clone(),
                    None => refuse(path, &format!("--restore-dir {guest}={host}: the snapshot has no preopened directory `{guest}`")),
                }
            }
            Some(Restoring { path: path.clone(), snap, packed, info: Some(info), image })
        }
    };
    let wasi = match &restore {
        Some(Restoring { path, snap, .. }) => match WasiCtx::from_state(&snap.wasi) {
            Ok(w) => w,
            Err(e) => refuse(path, &e.message()),
        },
        None => {
            let mut args = vec![prog];
            args.extend(opts.args);
            let mut w = match WasiCtx::new(WasiConfig { args, env: opts.env, preopens: opts.preopens }) {
                Ok(w) => w,
                // A bad --dir is a bad option: exit 2, as in `wanco interp`.
                Err(e) => fail(&e.to_string(), 2),
            };
            for addr in &opts.listen {
                if let Err(e) = w.preopen_listener(addr) {
                    fail(&format!("--tcplisten: {e}"), 2);
                }
            }
            w
        }
    };
    *wasi_host::WASI.lock().unwrap() = Some(wasi);
    checkpoint::restore_mark("wasi");
    if let Some(c) = &opts.control {
        if !desc.has_crmeta() {
            fail("--control: this binary was compiled with --no-cr: it cannot checkpoint", 2);
        }
        if let Err(e) = crate::cr::control::start(c.clone()) {
            fail(&e, 2);
        }
    }
    let gate_fd = opts.gate_fd;
    let cr = opts.cr;
    let wants_cr = restore.is_some() || cr.after_points.is_some() || cr.count_points;
    signals::run_on_wasm_stack(WASM_STACK, move || {
        checkpoint::restore_mark("thread");
        // The countdown must be set before the start function runs.
        checkpoint::preset(&cr);
        let mut restore = restore;
        let created = match restore.as_mut().and_then(|r| r.info.take()) {
            Some(info) => Instance::new_for_restore(desc, info, &mut |imp| wasi_host::resolve(imp)),
            None => Instance::new(desc, &mut |imp| wasi_host::resolve(imp)),
        };
        let mut inst = match created {
            Ok(i) => i,
            Err(crate::instance::InstantiateError::Trap(code)) => {
                eprintln!("wasm trap: {}", code.message());
                std::process::exit(wanco_state::abi::TRAP_EXIT_CODE)
            }
            Err(e) => fail(&e.to_string(), 1),
        };
        checkpoint::restore_mark("instantiate");
        let Some(start) = inst.export_func("_start") else {
            fail("the module exports no `_start` function: it is not a WASI command", 1)
        };
        match checkpoint::arm(&mut inst, &cr, start) {
            Ok(()) => {}
            Err(e) if wants_cr => fail(&e, 2),
            Err(_) => {} // compiled with --no-cr and nothing asked of it
        }
        if let Some(Restoring { path, snap, packed, image, .. }) = &mut restore {
            let image = image.as_ref().map(|(f, n)| (f, *n));
            let used = inst.install_over(snap, packed.take(), image, &path.display().to_string()).unwrap_or_else(|e| refuse(path, &e));
            if let Some(used) = used {
                checkpoint::timing::set_image_use(if used == crate::memory::ImageUse::Mapped { "mapped" } else { "copied" });
            }
            // Post-copy of a program without memory: still wait for the release.
            crate::cr::postcopy::without_memory().unwrap_or_else(|e| refuse(path, &e));
            // Unless a pager took it over, the checksum is compared now.
            crate::cr::pager::verify_unless_paged().unwrap_or_else(|e| refuse(path, &e));
            checkpoint::restore_mark("install");
            checkpoint::prepare_restore(snap).unwrap_or_else(|e| refuse(path, &e));
            checkpoint::restore_mark("frames");
        }
        if let Some(fd) = gate_fd {
            // Until told to run, a lost gateway link stays closed: the
            // source may have taken it back (a failed migration).
            let park = |p: bool| {
                if let Some(w) = wasi_host::WASI.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                    w.park_gateway(p);
                }
            };
            park(true);
            gate(fd);
            park(false);
        }
        checkpoint::enter_main();
        inst.call(start, &mut [0u64; 1]);
        checkpoint::at_exit();
        wasi_host::program_exited();
        std::process::exit(0)
    })
}