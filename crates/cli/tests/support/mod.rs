//! What the CLI's test binaries share: the `idtoken` binary run with a
//! clean environment, and a running `idtoken proxy`.

#![allow(dead_code)] // each binary uses a part

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// The binary with a clean environment: no gcloud file, no key file.
pub fn idtoken(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idtoken"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .kill_on_drop(true);
    cmd
}

pub async fn run(cmd: &mut Command) -> Output {
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the command finished in time")
        .expect("the command ran")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running proxy: its URL and everything it wrote on stderr so far.
pub struct Proxy {
    pub child: Child,
    /// The first listener's URL.
    pub url: String,
    /// Every listener's URL, in the order of the config file.
    pub urls: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proxy {
    pub fn log(&self) -> String {
        self.stderr.lock().expect("log lock").clone()
    }

    /// Waits until the proxy has written `needle` on stderr.
    pub async fn log_says(&self, needle: &str) {
        let said = async {
            while !self.log().contains(needle) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(20), said)
            .await
            .is_err()
        {
            panic!("the proxy never said {needle:?}: {}", self.log());
        }
    }
}

pub async fn start_proxy(home: &Path, env: &[(&str, String)], args: &[&str]) -> Proxy {
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    start_listeners(home, env, &all, 1).await
}

/// `idtoken proxy ARGS...` with `listeners` listeners (`--config`):
/// returns once it has printed each one's URL, in [`Proxy::urls`].
pub async fn start_listeners(
    home: &Path,
    env: &[(&str, String)],
    args: &[&str],
    listeners: usize,
) -> Proxy {
    let mut cmd = idtoken(home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .arg("proxy")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("proxy starts");
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut err = child.stderr.take().expect("stderr");
    let sink = stderr.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("log lock")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut urls = Vec::with_capacity(listeners);
    while urls.len() < listeners {
        let url = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the proxy says where it listens in time")
            .expect("stdout reads")
            .unwrap_or_else(|| {
                panic!("no URL on stdout; stderr: {}", stderr.lock().expect("lock"))
            });
        urls.push(url);
    }
    Proxy {
        child,
        url: urls[0].clone(),
        urls,
        stderr,
    }
}
