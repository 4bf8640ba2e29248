//! One running `idtoken proxy` with everything around it: the emulator it
//! gets tokens from, a target, a temporary HOME. The child is killed when
//! the fixture is dropped.
//!
//! ```ignore
//! let fx = ProxyFixture::builder().arg("--http2").start().await;
//! let seen = get_json(&fx.url()).await;
//! assert_eq!(seen["authorization"]["aud"], Value::from(fx.origin.clone()));
//! ```

use idtoken_emulator::Emulator;

use super::upstream::{self, Upstream};
use crate::support::{Proxy, start_proxy};
use crate::tls::{Ca, tls_acceptor, write_ca};

/// A proxy, its emulator and its target.
pub struct ProxyFixture {
    pub emu: Emulator,
    /// The running proxy: its child process, URL and log.
    pub proxy: Proxy,
    /// The target's origin (`--target` without the path given to
    /// [`Builder::path`]).
    pub origin: String,
    /// The echo service, when the target is one.
    upstream: Option<Upstream>,
    _home: tempfile::TempDir,
}

impl ProxyFixture {
    /// A proxy to the echo service, with the emulator's metadata server as
    /// its credentials.
    pub fn builder() -> Builder {
        Builder {
            emu: None,
            target: Target::Echo,
            path: String::new(),
            args: Vec::new(),
            env: Vec::new(),
            credentials: true,
        }
    }

    /// The proxy's URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.proxy.url
    }

    /// What the proxy wrote on stderr so far.
    pub fn log(&self) -> String {
        self.proxy.log()
    }

    /// The echo service behind the proxy.
    pub fn upstream(&self) -> &Upstream {
        self.upstream
            .as_ref()
            .expect("the target is the echo service")
    }
}

enum Target {
    Echo,
    EchoTls {
        /// The certificate the proxy trusts, as `SSL_CERT_FILE` holds it.
        trusted_pem: String,
        acceptor: tokio_rustls::TlsAcceptor,
        host: String,
    },
    H2c,
    Url(String),
}

pub struct Builder {
    emu: Option<Emulator>,
    target: Target,
    path: String,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    credentials: bool,
}

impl Builder {
    /// Use this emulator (built with other settings, or with a hold in
    /// place) instead of a default one.
    pub fn emulator(mut self, emu: Emulator) -> Self {
        self.emu = Some(emu);
        self
    }

    /// Forward to the echo service over TLS, its certificate for `host`
    /// signed by `signer`, with only `trusted` in the proxy's
    /// `SSL_CERT_FILE`.
    pub fn tls(mut self, trusted: &Ca, signer: &Ca, host: &str) -> Self {
        self.target = Target::EchoTls {
            trusted_pem: trusted.pem(),
            acceptor: tls_acceptor(signer),
            host: host.to_owned(),
        };
        self
    }

    /// Forward to an h2c-only service (see [`upstream::h2c`]).
    pub fn h2c(mut self) -> Self {
        self.target = Target::H2c;
        self
    }

    /// Forward to whatever is at `url` (a closed port, a hand-made server).
    pub fn target(mut self, url: impl Into<String>) -> Self {
        self.target = Target::Url(url.into());
        self
    }

    /// A path after the target's origin in `--target`.
    pub fn path(mut self, path: &str) -> Self {
        self.path = path.to_owned();
        self
    }

    /// One more flag for `idtoken proxy`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// One more environment variable for the proxy's process.
    pub fn env(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.env.push((name, value.into()));
        self
    }

    /// No credentials anywhere: no metadata server, no files.
    pub fn no_credentials(mut self) -> Self {
        self.credentials = false;
        self
    }

    /// Starts the emulator (unless given), the target, and the proxy;
    /// returns once the proxy has said where it listens.
    pub async fn start(self) -> ProxyFixture {
        let emu = match self.emu {
            Some(emu) => emu,
            None => Emulator::start().await.expect("emulator"),
        };
        let home = tempfile::tempdir().expect("home");
        let mut env = Vec::new();
        if self.credentials {
            env.push(("GCE_METADATA_HOST", emu.metadata_host()));
        } else {
            env.push(("METADATA_SERVER_DETECTION", "none".to_owned()));
        }
        let (origin, upstream) = match self.target {
            Target::Echo => {
                let up = upstream::echo(&emu).await;
                (up.origin.clone(), Some(up))
            }
            Target::EchoTls {
                trusted_pem,
                acceptor,
                host,
            } => {
                let ca_file = write_ca(home.path(), &trusted_pem);
                env.push(("SSL_CERT_FILE", ca_file.display().to_string()));
                let up = upstream::echo_tls(&emu, acceptor, &host).await;
                (up.origin.clone(), Some(up))
            }
            Target::H2c => (upstream::h2c(&emu).await, None),
            Target::Url(url) => (url, None),
        };
        env.extend(self.env);
        let target = format!("{origin}{}", self.path);
        let mut args = vec!["--target", target.as_str()];
        args.extend(self.args.iter().map(String::as_str));
        let proxy = start_proxy(home.path(), &env, &args).await;
        ProxyFixture {
            emu,
            proxy,
            origin,
            upstream,
            _home: home,
        }
    }
}
