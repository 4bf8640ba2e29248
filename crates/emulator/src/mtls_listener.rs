//! The mTLS listener: a second port on 127.0.0.1 that serves the same
//! router over TLS with optional client certificates, as
//! `sts.mtls.googleapis.com` does, and puts each connection's client
//! certificate in its requests' extensions ([`PeerCert`]) for STS.

use std::sync::Arc;

use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::{TlsAcceptor, rustls};

use crate::mtls::PeerCert;
use crate::state::Control;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `router` on `listener` over TLS until the emulator shuts down.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    config: Arc<rustls::ServerConfig>,
    control: Arc<Control>,
) {
    let acceptor = TlsAcceptor::from(config);
    let stop = control.clone();
    let accept_loop = async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                // Out of descriptors, say: wait rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            let control = control.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                else {
                    // A refused client certificate ends here, as at Google:
                    // the client sees the TLS alert.
                    return;
                };
                let peer = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| PeerCert(leaf.to_vec()));
                let service = match peer {
                    Some(peer) => router.layer(Extension(peer)),
                    None => router,
                };
                let conn = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(
                        TokioIo::new(tls),
                        TowerToHyperService::new(service),
                    )
                    .into_owned();
                tokio::select! {
                    _ = conn => {}
                    () = control.shutting_down() => {}
                }
            });
        }
    };
    tokio::select! {
        () = accept_loop => {}
        () = stop.shutting_down() => {}
    }
}
