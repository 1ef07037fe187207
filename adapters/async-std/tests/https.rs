//! HTTPS through the shipped transport, against a rustls server on loopback.
//!
//! `tests/tls/` holds a test root and a `localhost` certificate it signed (valid until 2126),
//! made for these tests alone with openssl; the key protects nothing else.

use std::sync::Arc;
use std::time::Duration;

use async_net::TcpListener;
use bytes::Bytes;
use futures_rustls::TlsAcceptor;
use futures_rustls::pki_types::pem::PemObject as _;
use futures_rustls::pki_types::{CertificateDer, PrivateKeyDer};
use futures_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use gcbulk_async_std::{HttpOptions, HttpTransport, Transport};
use gcbulk_core::sched::TransportError;
use http::Request;
use smol::io::{AsyncReadExt as _, AsyncWriteExt as _};

const ROOT: &[u8] = include_bytes!("tls/ca.pem");
const CERT: &[u8] = include_bytes!("tls/localhost.pem");
const KEY: &[u8] = include_bytes!("tls/localhost.key");

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Serves over TLS on `listener`, every connection on a task of its own, until dropped.
async fn serve(listener: TcpListener) {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring has the default versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(CERT).expect("a certificate")],
            PrivateKeyDer::from_pem_slice(KEY).expect("a key"),
        )
        .expect("the key matches the certificate");
    let acceptor = TlsAcceptor::from(Arc::new(config));

    loop {
        let (tcp, _) = listener.accept().await.expect("a connection");
        let acceptor = acceptor.clone();
        smol::spawn(async move {
            // A client that does not trust the certificate hangs up during the handshake.
            if let Ok(tls) = acceptor.accept(tcp).await {
                answer_each_request(tls).await;
            }
        })
        .detach();
    }
}

/// Answers every request on one connection until the client closes it.
async fn answer_each_request(mut tls: futures_rustls::server::TlsStream<async_net::TcpStream>) {
    let mut request = Vec::new();
    let mut chunk = [0; 1024];
    loop {
        let read = tls.read(&mut chunk).await.unwrap_or(0);
        if read == 0 {
            return;
        }
        request.extend_from_slice(&chunk[..read]);
        while let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            request.drain(..end + 4);
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecure";
            if tls.write_all(answer).await.is_err() || tls.flush().await.is_err() {
                return;
            }
        }
    }
}

fn trusting_transport() -> HttpTransport {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ROOT).expect("a root"))
        .expect("a valid root");
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring has the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    HttpTransport::new(HttpOptions {
        tls: Some(Arc::new(config)),
        ..HttpOptions::default()
    })
    .expect("valid options")
}

fn get(url: &str) -> Request<Bytes> {
    Request::get(url)
        .body(Bytes::new())
        .expect("a valid request")
}

#[test]
fn https_works_with_a_trusted_root_and_keeps_its_connection() {
    smol::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("an address").port();
        let _server = smol::spawn(serve(listener));

        let transport = trusting_transport();
        for host in ["localhost", "localhost", "127.0.0.1"] {
            let url = format!("https://{host}:{port}/api/v2/users/me");
            let response = transport
                .send(get(&url), Duration::from_secs(5))
                .await
                .expect("an answer");
            assert_eq!(response.status(), 200);
            assert_eq!(response.body().as_ref(), b"secure");
        }
        // Two names, two origins: one connection each, the first one reused.
        assert_eq!(transport.connections_opened(), 2);
    });
}

#[test]
fn an_untrusted_certificate_fails_to_connect() {
    smol::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("an address").port();
        let _server = smol::spawn(serve(listener));

        // The Mozilla roots do not include the test root.
        let transport = HttpTransport::new(HttpOptions::default()).expect("valid options");
        let url = format!("https://localhost:{port}/");
        let result = transport.send(get(&url), Duration::from_secs(5)).await;
        assert_eq!(result.unwrap_err(), TransportError::Connect);
    });
}
