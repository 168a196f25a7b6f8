//! A real nginx from Debian as the TLS proxy in front of a test board, with
//! certificates made here: a private CA's leaf on one port, a self-signed
//! certificate on another.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Proxy {
    child: Child,
    pub dir: tempfile::TempDir,
    /// Presents a leaf signed by the private CA in `ca_file`.
    pub ca_port: u16,
    /// Presents a self-signed certificate.
    pub self_port: u16,
    pub ca_file: PathBuf,
}

/// How nginx forwards one location to the board.
const LOCATIONS: &[(&str, &str, u32)] = &[
    // The recipe README gives: capital-U Upgrade, a long read time-out.
    ("/webrepl/", "Upgrade", 3600),
    // The usual recipe for other servers, which boards do not understand.
    ("/lower/", "upgrade", 3600),
    // A proxy that closes a link idle for 2 s.
    ("/idle/", "Upgrade", 2),
];

fn certs(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "webrepl-mount test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    let own_key = KeyPair::generate().expect("own key");
    let own = CertificateParams::new(vec!["localhost".to_string()])
        .expect("own params")
        .self_signed(&own_key)
        .expect("self-signed");
    let w = |name: &str, text: String| std::fs::write(dir.join(name), text).expect("write pem");
    w("ca.pem", ca_cert.pem());
    w("leaf.pem", leaf.pem());
    w("leaf.key", leaf_key.serialize_pem());
    w("own.pem", own.pem());
    w("own.key", own_key.serialize_pem());
}

fn server(port: u16, cert: &str, board: u16, dir: &Path) -> String {
    let mut s = format!(
        "server {{\n listen 127.0.0.1:{port} ssl;\n ssl_certificate {d}/{cert}.pem;\n ssl_certificate_key {d}/{cert}.key;\n",
        d = dir.display()
    );
    for (loc, conn, timeout) in LOCATIONS {
        s.push_str(&format!(
            " location {loc} {{\n  proxy_pass http://127.0.0.1:{board}/;\n  proxy_http_version 1.1;\n  proxy_set_header Upgrade $http_upgrade;\n  proxy_set_header Connection \"{conn}\";\n  proxy_read_timeout {timeout}s;\n  proxy_send_timeout {timeout}s;\n }}\n"
        ));
    }
    s.push_str("}\n");
    s
}

impl Proxy {
    pub fn start(board: u16) -> Proxy {
        let dir = tempfile::tempdir().expect("proxy dir");
        let d = dir.path();
        certs(d);
        std::fs::create_dir(d.join("tmp")).expect("tmp");
        let (ca_port, self_port) = (super::free_port(), super::free_port());
        let tmp = d.join("tmp").display().to_string();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n access_log off;\n client_body_temp_path {tmp};\n proxy_temp_path {tmp};\n fastcgi_temp_path {tmp};\n uwsgi_temp_path {tmp};\n scgi_temp_path {tmp};\n{}{}}}\n",
            server(ca_port, "leaf", board, d),
            server(self_port, "own", board, d),
            d = d.display(),
        );
        std::fs::write(d.join("nginx.conf"), conf).expect("nginx.conf");
        let child = Command::new("nginx")
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-p")
            .arg(d)
            .arg("-e")
            .arg(d.join("error.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start nginx (scripts/test.sh installs it)");
        for port in [ca_port, self_port] {
            super::eventually(10, "nginx listening (see its error.log)", || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
        }
        let ca_file = d.join("ca.pem");
        Proxy {
            child,
            dir,
            ca_port,
            self_port,
            ca_file,
        }
    }

    /// The address of `location` on the port with the CA-signed certificate.
    pub fn url(&self, location: &str) -> String {
        format!("wss://localhost:{}{location}", self.ca_port)
    }

    pub fn self_signed_url(&self, location: &str) -> String {
        format!("wss://localhost:{}{location}", self.self_port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
