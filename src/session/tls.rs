//! What a `wss://` link trusts: the system's certificate store (as curl and
//! git do, `SSL_CERT_FILE` included), a CA file, or one pinned certificate,
//! and errors a person can act on, with the fingerprint ssh-style.

use crate::error::{Error, Result, TlsFailure};
use base64::Engine;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::Digest;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// The user's say in what a TLS proxy may present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// PEM certificates trusted as authorities besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Exactly this certificate (its SHA-256), nothing else.
    pub pinned: Option<Fingerprint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(sha2::Sha256::digest(der).into())
    }

    /// `SHA256:<base64>` as ssh prints it, or the hex pairs of
    /// `openssl x509 -fingerprint -sha256`.
    pub fn parse(s: &str) -> Result<Fingerprint> {
        let bad = || Error::Usage(crate::error::Usage::Fingerprint { arg: s.to_string() });
        let bytes = if let Some(b64) = s.strip_prefix("SHA256:") {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(b64.trim_end_matches('='))
                .map_err(|_| bad())?
        } else {
            let hex: String = s.chars().filter(|c| *c != ':').collect();
            if hex.len() != 64 || !hex.is_ascii() {
                return Err(bad());
            }
            (0..32)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                .collect::<std::result::Result<Vec<u8>, _>>()
                .map_err(|_| bad())?
        };
        Ok(Fingerprint(bytes.try_into().map_err(|_| bad())?))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(self.0);
        write!(f, "SHA256:{b64}")
    }
}

/// The system's store, read once: every reconnect would read it again.
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!("system certificates: {e}");
        }
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            // A machine without ca-certificates still reaches public proxies.
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        roots
    })
}

/// One handshake's verifier: remembers what it was shown, for the error.
#[derive(Debug)]
pub struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Option<Fingerprint>,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<Fingerprint>>,
}

impl Verifier {
    pub fn new(trust: &Trust, provider: Arc<CryptoProvider>) -> Result<Arc<Verifier>> {
        let mut roots = system_roots().clone();
        if let Some(file) = &trust.ca_file {
            let cant = |e: &dyn std::fmt::Display| {
                Error::Setup(crate::error::Setup::CaFile {
                    path: file.clone(),
                    why: e.to_string(),
                })
            };
            let certs = CertificateDer::pem_file_iter(file)
                .map_err(|e| cant(&e))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| cant(&e))?;
            if certs.is_empty() {
                return Err(cant(&"no PEM certificate in it"));
            }
            for c in certs {
                roots.add(c).map_err(|e| cant(&e))?;
            }
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| Error::Tls {
                host: String::new(),
                failure: TlsFailure::Setup(e.to_string()),
            })?;
        Ok(Arc::new(Verifier {
            webpki,
            pinned: trust.pinned,
            provider,
            seen: Mutex::new(None),
        }))
    }

    fn seen(&self) -> Option<Fingerprint> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What went wrong in a failed handshake with `host`.
    pub fn explain(&self, host: &str, e: &std::io::Error) -> Error {
        let seen = self.seen();
        let cert_error = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .and_then(|r| match r {
                rustls::Error::InvalidCertificate(c) => Some(c.clone()),
                _ => None,
            });
        let failure = match (cert_error, self.pinned, seen) {
            (None, ..) => TlsFailure::Handshake(e.to_string()),
            (Some(_), Some(want), Some(got)) if want != got => TlsFailure::NotPinned {
                want: want.to_string(),
                got: got.to_string(),
            },
            (Some(CertificateError::Expired | CertificateError::ExpiredContext { .. }), _, _) => {
                TlsFailure::Expired
            }
            (
                Some(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                ),
                _,
                Some(fp),
            ) => TlsFailure::OtherNames {
                fingerprint: fp.to_string(),
            },
            (Some(_), _, Some(fp)) => TlsFailure::Untrusted {
                fingerprint: fp.to_string(),
            },
            (Some(c), _, None) => TlsFailure::Refused(format!("{c:?}")),
        };
        Error::Tls {
            host: host.to_string(),
            failure,
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let fp = Fingerprint::of(end_entity);
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(fp);
        match self.pinned {
            // Pinned like ssh's known host: that certificate, whoever signed it.
            Some(want) if want == fp => Ok(ServerCertVerified::assertion()),
            Some(_) => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            None => {
                self.webpki
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_as_ssh_and_openssl_print_them() {
        let fp = Fingerprint::of(b"certificate");
        let shown = fp.to_string();
        assert!(shown.starts_with("SHA256:") && !shown.ends_with('='));
        assert_eq!(Fingerprint::parse(&shown).unwrap(), fp);
        let hex: Vec<String> = fp.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(Fingerprint::parse(&hex.join(":")).unwrap(), fp);
        assert!(Fingerprint::parse("SHA256:short").is_err());
        assert!(Fingerprint::parse("zz").is_err());
        assert!(Fingerprint::parse(&"é".repeat(32)).is_err());
    }
}
