//! The TLS options shared by `wanco migrate`, `wanco agent` and
//! `wanco gateway`: `--cert`, `--key`, `--ca` (mutual TLS) and `--insecure`.

use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use wanco_transport::TlsFiles;

#[derive(Args, Debug, Clone, Default)]
pub struct TlsOpts {
    /// This side's TLS certificate (PEM).
    #[arg(long, requires_all = ["key", "ca"])]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The CA that must have signed the other side's certificate (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Allow plaintext (no TLS): only on a trusted link.
    #[arg(long)]
    pub insecure: bool,
}

impl TlsOpts {
    /// The three files, if all were given (`what` names what needs them in the error).
    pub fn required(&self, what: &str) -> Result<TlsFiles> {
        match (&self.cert, &self.key, &self.ca) {
            (Some(cert), Some(key), Some(ca)) => Ok(TlsFiles { cert: cert.clone(), key: key.clone(), ca: ca.clone() }),
            _ => bail!("{what} needs --cert, --key and --ca (mutual TLS)"),
        }
    }

    /// The three files, or none at all (an error if only some were given,
    /// or if they come with `--insecure`).
    pub fn files(&self) -> Result<Option<TlsFiles>> {
        match (&self.cert, &self.key, &self.ca) {
            (Some(cert), Some(key), Some(ca)) => {
                if self.insecure {
                    bail!("--insecure and --cert/--key/--ca exclude each other");
                }
                Ok(Some(TlsFiles { cert: cert.clone(), key: key.clone(), ca: ca.clone() }))
            }
            (None, None, None) => Ok(None),
            _ => bail!("--cert, --key and --ca go together"),
        }
    }

    /// For a server: the files, or plaintext with `--insecure`.
    pub fn server_files(&self, what: &str) -> Result<Option<TlsFiles>> {
        match self.files()? {
            Some(f) => Ok(Some(f)),
            None if self.insecure => Ok(None),
            None => bail!("{what} needs --cert, --key and --ca (mutual TLS), or --insecure for plaintext"),
        }
    }
}
