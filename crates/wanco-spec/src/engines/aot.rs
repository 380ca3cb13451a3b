//! The AOT compiler as a spec engine (`aot-x86_64`, `aot-aarch64`).
//!
//! [`Engine::prepare`] compiles every module of a `.wast` file with
//! `wanco-compiler` into its own object, links them with the runtime into one
//! driver executable, and starts it (natively, or under `qemu-aarch64`). Each
//! directive is then one request line to the driver and one response line
//! back (protocol: `wanco_rt::spec_driver`). The driver executes the real
//! compiled code of every module.

use crate::engine::{Engine, FileInfo, InstanceId, InstantiateError, InvokeError, ModuleId};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::Duration;
use wanco_compiler::{CompileOptions, Entry, LinkInputs, Target};
use wanco_state::Value;

struct Driver {
    child: Child,
    stdin: ChildStdin,
    /// Response lines, read by a thread so a hung driver can time out.
    lines: Receiver<String>,
    stderr_path: PathBuf,
}

/// How long one directive may take before the driver is considered hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

fn spawn_reader(stdout: ChildStdout) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// An AOT engine for one target ISA.
pub struct AotEngine {
    target: Target,
    name: String,
    opt_level: u8,
    explicit_bounds_checks: bool,
    dir: Option<tempfile::TempDir>,
    /// Per module: index in the driver's descriptor list, or why it failed to compile.
    modules: Vec<Result<usize, String>>,
    driver: Option<Driver>,
    dead: Option<String>,
    next_instance: InstanceId,
}

impl AotEngine {
    /// An engine compiling for `target`.
    pub fn new(target: Target) -> AotEngine {
        AotEngine {
            target,
            name: format!("aot-{}", target.name()),
            opt_level: 2,
            explicit_bounds_checks: false,
            dir: None,
            modules: Vec::new(),
            driver: None,
            dead: None,
            next_instance: 0,
        }
    }

    /// The same engine with explicit bounds checks (`aot-<isa>-checked`).
    pub fn with_explicit_bounds_checks(mut self) -> AotEngine {
        self.explicit_bounds_checks = true;
        self.name.push_str("-checked");
        self
    }

    fn kill(&mut self) {
        if let Some(mut d) = self.driver.take() {
            drop(d.stdin);
            let _ = d.child.kill();
            let _ = d.child.wait();
        }
    }

    fn request(&mut self, line: &str) -> Result<String, String> {
        if let Some(why) = &self.dead {
            return Err(why.clone());
        }
        let Some(d) = self.driver.as_mut() else { return Err("no driver (link failed)".into()) };
        let sent = writeln!(d.stdin, "{line}").and_then(|_| d.stdin.flush()).is_ok();
        let resp = if sent { d.lines.recv_timeout(REQUEST_TIMEOUT) } else { Err(RecvTimeoutError::Disconnected) };
        let resp = match resp {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) => {
                let _ = d.child.kill();
                None
            }
            Err(RecvTimeoutError::Disconnected) => None,
        };
        let Some(resp) = resp else {
            let status = d.child.wait().map(|s| s.to_string()).unwrap_or_default();
            let stderr = std::fs::read_to_string(&d.stderr_path).unwrap_or_default();
            let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
            let why = format!("driver died ({status}) after `{line}`: {tail}");
            self.dead = Some(why.clone());
            return Err(why);
        };
        Ok(resp.trim_end().to_string())
    }

    fn link(&mut self, objects: Vec<PathBuf>, symbols: Vec<String>) -> Result<(), String> {
        let dir = self.dir.as_ref().unwrap().path().to_path_buf();
        let main = wanco_compiler::bundle_main_object(self.target, wanco_state::abi::symbols::SPEC_MAIN, &symbols)
            .map_err(|e| e.to_string())?;
        let main_path = dir.join("main.o");
        std::fs::write(&main_path, main).map_err(|e| e.to_string())?;
        let mut all = objects;
        all.push(main_path);
        let runtime = wanco_compiler::runtime_library(self.target).map_err(|e| e.to_string())?;
        let exe = dir.join("driver");
        wanco_compiler::link_executable(&LinkInputs { objects: &all, runtime: &runtime, output: &exe, target: self.target })
            .map_err(|e| e.to_string())?;
        let stderr_path = dir.join("stderr");
        let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
        let mut cmd = if self.target == Target::host() {
            Command::new(&exe)
        } else {
            let mut c = Command::new("qemu-aarch64");
            c.args(["-L", "/usr/aarch64-linux-gnu"]).arg(&exe);
            c
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start the driver: {e}"))?;
        let stdin = child.stdin.take().unwrap();
        let lines = spawn_reader(child.stdout.take().unwrap());
        self.driver = Some(Driver { child, stdin, lines, stderr_path });
        Ok(())
    }
}

impl Drop for AotEngine {
    fn drop(&mut self) {
        self.kill();
    }
}

fn hex(s: &str) -> String {
    let mut h = String::from("x");
    h.extend(s.bytes().map(|b| format!("{b:02x}")));
    h
}

fn encode(v: &Value) -> String {
    match v {
        Value::I32(x) => format!("i32:{}", *x as u32),
        Value::I64(x) => format!("i64:{}", *x as u64),
        Value::F32(b) => format!("f32:{b}"),
        Value::F64(b) => format!("f64:{b}"),
        Value::FuncRef(None) => "funcref:null".into(),
        Value::FuncRef(Some(_)) => "funcref:ref".into(),
        Value::ExternRef(None) => "externref:null".into(),
        Value::ExternRef(Some(n)) => format!("externref:{n}"),
        Value::V128(x) => format!("v128:{x}"),
    }
}

fn decode(s: &str) -> Result<Value, String> {
    let (t, v) = s.split_once(':').ok_or_else(|| format!("bad value `{s}` from driver"))?;
    let bad = || format!("bad value `{s}` from driver");
    Ok(match (t, v) {
        ("i32", v) => Value::I32(v.parse::<u32>().map_err(|_| bad())? as i32),
        ("i64", v) => Value::I64(v.parse::<u64>().map_err(|_| bad())? as i64),
        ("f32", v) => Value::F32(v.parse().map_err(|_| bad())?),
        ("f64", v) => Value::F64(v.parse().map_err(|_| bad())?),
        ("v128", v) => Value::V128(v.parse().map_err(|_| bad())?),
        ("funcref", "null") => Value::FuncRef(None),
        ("funcref", _) => Value::FuncRef(Some(0)),
        ("externref", "null") => Value::ExternRef(None),
        ("externref", n) => Value::ExternRef(Some(n.parse().map_err(|_| bad())?)),
        _ => return Err(bad()),
    })
}

impl Engine for AotEngine {
    fn name(&self) -> &str {
        &self.name
    }

    fn prepare(&mut self, _file: &FileInfo, modules: &[Vec<u8>]) -> Result<(), String> {
        self.kill();
        self.dead = None;
        self.next_instance = 0;
        self.modules.clear();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut objects = Vec::new();
        let mut symbols = Vec::new();
        for (i, wasm) in modules.iter().enumerate() {
            let symbol = format!("wanco_spec_module_{i}");
            let opts = CompileOptions {
                target: self.target,
                opt_level: self.opt_level,
                entry: Entry::Library { symbol: symbol.clone() },
                explicit_bounds_checks: self.explicit_bounds_checks,
                inject_fault: None,
                canonicalize_nans: false,
                // The suite runs the code as shipped: with the checkpoint
                // instrumentation (polls, return sites, restore routes). The
                // explicit-bounds-check variant tests that mode alone (and
                // keeps the full CI run short).
                cr: !self.explicit_bounds_checks,
                jobs: None,
                progress: None,
                raw_stack_params: false,
            };
            match wanco_compiler::compile_object(wasm, &opts) {
                Ok(obj) => {
                    let p = dir.path().join(format!("m{i}.o"));
                    std::fs::write(&p, obj).map_err(|e| e.to_string())?;
                    objects.push(p);
                    self.modules.push(Ok(symbols.len()));
                    symbols.push(symbol);
                }
                Err(e) => self.modules.push(Err(e.to_string())),
            }
        }
        self.dir = Some(dir);
        if let Err(e) = self.link(objects, symbols) {
            self.dead = Some(format!("link failed: {e}"));
        }
        Ok(())
    }

    fn validate(&mut self, wasm: &[u8]) -> Result<(), String> {
        wanco_compiler::validate(wasm).map_err(|e| e.to_string())
    }

    fn instantiate(&mut self, module: ModuleId, _name: Option<&str>) -> Result<InstanceId, InstantiateError> {
        let idx = match self.modules.get(module) {
            Some(Ok(i)) => *i,
            Some(Err(e)) => return Err(InstantiateError::Other(format!("compile failed: {e}"))),
            None => return Err(InstantiateError::Other(format!("no module {module}"))),
        };
        let id = self.next_instance;
        self.next_instance += 1;
        let resp = self.request(&format!("inst {idx} {id}")).map_err(InstantiateError::Other)?;
        match resp.split_once(' ').unwrap_or((&resp, "")) {
            ("ok", _) => Ok(id),
            ("unlinkable", m) => Err(InstantiateError::Unlinkable(m.into())),
            ("trap", m) if m.contains("call stack exhausted") => Err(InstantiateError::Exhaustion),
            ("trap", m) => Err(InstantiateError::Trap(m.into())),
            (_, m) => Err(InstantiateError::Other(m.into())),
        }
    }

    fn register(&mut self, name: &str, instance: InstanceId) -> Result<(), String> {
        let resp = self.request(&format!("reg {} {instance}", hex(name)))?;
        if resp == "ok" { Ok(()) } else { Err(resp) }
    }

    fn invoke(&mut self, instance: InstanceId, export: &str, args: &[Value]) -> Result<Vec<Value>, InvokeError> {
        let mut line = format!("invoke {instance} {}", hex(export));
        for a in args {
            line.push(' ');
            line.push_str(&encode(a));
        }
        let resp = self.request(&line).map_err(InvokeError::Other)?;
        let mut parts = resp.split(' ');
        match parts.next() {
            Some("ok") => parts.map(decode).collect::<Result<_, _>>().map_err(InvokeError::Other),
            Some("trap") => {
                let m = resp["trap ".len()..].to_string();
                if m.contains("call stack exhausted") { Err(InvokeError::Exhaustion) } else { Err(InvokeError::Trap(m)) }
            }
            _ => Err(InvokeError::Other(resp)),
        }
    }

    fn get(&mut self, instance: InstanceId, export: &str) -> Result<Value, String> {
        let resp = self.request(&format!("get {instance} {}", hex(export)))?;
        match resp.split_once(' ') {
            Some(("ok", v)) => decode(v),
            _ => Err(resp),
        }
    }

    fn finish(&mut self) {
        self.kill();
        self.dir = None;
    }
}
