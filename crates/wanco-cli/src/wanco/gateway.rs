//! `wanco gateway`: the stable address clients of a migrating WASI server
//! connect to (see `wanco_gateway`).

use anyhow::{bail, Context, Result};
use clap::Args;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
#[command(after_help = "Example:\n  wanco gateway --link 0.0.0.0:7000 --program kv=0.0.0.0:8080 --cert gw.pem --key gw.key --ca ca.pem\n  WANCO_GATEWAY_CERT=kv.pem WANCO_GATEWAY_KEY=kv.key WANCO_GATEWAY_CA=ca.pem \\\n    ./server --tcplisten tls://gw.example:7000/kv\n\nThe program's runtime attaches to the gateway over mutual TLS with a certificate valid\nfor the DNS name of the program id (here `kv`); clients connect to 0.0.0.0:8080.\nWhen the program is checkpointed and restored elsewhere, its runtime attaches again\nand every client connection continues at the exact byte. A restarted gateway knows\nno connection: its clients see a reset.")]
pub struct Opts {
    /// Where the programs' runtimes attach (mutual TLS), e.g. 0.0.0.0:7000.
    #[arg(long, value_name = "HOST:PORT")]
    link: String,
    /// A program: its id (the DNS name its runtime's certificate must be
    /// valid for) and the address its clients connect to; repeatable.
    #[arg(long = "program", value_name = "ID=HOST:PORT", required = true)]
    programs: Vec<String>,
    /// Reset the clients of a program that has not attached (again) for
    /// this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    timeout: f64,
    /// Reset a client for which this many bytes of the program's answers
    /// wait (it does not read them).
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    max_queued: u64,
    #[command(flatten)]
    tls: crate::tls_opts::TlsOpts,
}

pub fn run(o: Opts) -> Result<i32> {
    if o.tls.insecure {
        bail!("wanco gateway always uses mutual TLS (the certificate names the program): --insecure is not accepted");
    }
    let tls = o.tls.required("wanco gateway")?;
    let programs = o
        .programs
        .iter()
        .map(|p| p.split_once('=').map(|(a, b)| (a.to_string(), b.to_string())).with_context(|| format!("--program `{p}`: expected ID=HOST:PORT")))
        .collect::<Result<Vec<_>>>()?;
    if !(o.timeout.is_finite() && o.timeout > 0.0) {
        bail!("--timeout {}: expected a positive number of seconds", o.timeout);
    }
    let cfg = wanco_gateway::server::Config { link_addr: o.link.clone(), programs, tls, timeout: Duration::from_secs_f64(o.timeout), max_queued: o.max_queued.max(1) };
    let g = wanco_gateway::server::Gateway::bind(&cfg)?;
    eprintln!("wanco gateway: runtimes attach at {} (mutual TLS)", g.link_addr()?);
    for (id, _) in &cfg.programs {
        eprintln!("wanco gateway: clients of `{id}` connect to {}", g.client_addr(id).map(|a| a.to_string()).unwrap_or_default());
    }
    g.run()?;
    Ok(0)
}
