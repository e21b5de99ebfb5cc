//! Real servers the tests talk to, started on 127.0.0.1 and free ports: an
//! S3-compatible server (moto, installed by `make test-deps`) and rsyslog.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (the OS's choice, released for the server).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status} before listening on port {port}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on port {port} within 60 s");
}

/// Starts `cmd` so that it dies with the test process, on a thread that
/// lives as long as the process (the death signal follows the thread that
/// spawned the child).
fn spawn_for_process(mut cmd: Command) -> Child {
    use std::os::unix::process::CommandExt;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: prctl in the child between fork and exec only sets its death signal.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        tx.send(cmd.spawn()).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap().expect("the server starts")
}

/// The moto S3 server's executable: `EMRWATCH_MOTO`, else the one `make test-deps` installs.
fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("EMRWATCH_MOTO") {
        return p.into();
    }
    let p = super::root().join("target/test-venv/bin/moto_server");
    assert!(
        p.exists(),
        "{} is missing: run `make test-deps` (it installs moto, the S3 server the tests use)",
        p.display()
    );
    p
}

/// An S3-compatible server shared by every test of this process.
pub struct S3 {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// The shared S3 server, started on first use.
pub fn s3() -> &'static S3 {
    static SERVER: OnceLock<S3> = OnceLock::new();
    SERVER.get_or_init(|| {
        let port = free_port();
        let mut cmd = Command::new(moto_server());
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = spawn_for_process(cmd);
        wait_for_port(port, "moto_server", &mut child);
        S3 {
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    })
}

impl S3 {
    /// Creates bucket `name` (moto accepts an unsigned CreateBucket).
    pub fn create_bucket(&self, name: &str) {
        let port = self.endpoint.rsplit(':').next().unwrap();
        let mut s = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "create bucket {name}: {reply}"
        );
    }

    /// Environment for an emrwatch process using this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// Uploads `data` to `s3://bucket/key` (through the same client emrwatch uses).
    pub fn put(&self, bucket: &str, key: &str, data: Vec<u8>) {
        use object_store::ObjectStoreExt;
        let cfg = emrwatch::config::S3Config {
            endpoint: Some(self.endpoint.clone()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            allow_http: Some(true),
            ..Default::default()
        };
        emrwatch::store::s3::configure(&cfg);
        let url = url::Url::parse(&format!("s3://{bucket}/")).unwrap();
        let store = emrwatch::store::s3::build(&url).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(store.put(&object_store::path::Path::from(key), data.into()))
            .unwrap();
    }
}

/// An rsyslog receiving on UDP and TCP loopback ports, writing each
/// message's raw text as one line of a file.
pub struct Rsyslog {
    /// UDP port.
    pub udp: u16,
    /// TCP port (octet-counted or LF-framed).
    pub tcp: u16,
    out: PathBuf,
    child: Child,
}

impl Rsyslog {
    /// Starts rsyslogd (`apt-get install rsyslog`) with its files under `dir`.
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, None)
    }

    /// Starts rsyslogd whose TCP port speaks TLS (`rsyslog-openssl`) with a
    /// certificate for 127.0.0.1 signed by a new CA; returns the CA's PEM file too.
    pub fn start_tls(dir: &Path) -> (Self, PathBuf) {
        let sh = |args: &[&str]| {
            let st = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl runs");
            assert!(st.success(), "openssl {args:?}");
        };
        sh(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=emrwatch test CA",
        ]);
        sh(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        sh(&[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ]);
        let tls = format!(
            r#"DefaultNetstreamDriverCAFile="{d}/ca.pem" DefaultNetstreamDriverCertFile="{d}/srv.pem" DefaultNetstreamDriverKeyFile="{d}/srv.key""#,
            d = dir.display()
        );
        (Self::start_with(dir, Some(tls)), dir.join("ca.pem"))
    }

    fn start_with(dir: &Path, tls: Option<String>) -> Self {
        let (udp, tcp) = (free_port(), free_port());
        let out = dir.join("received.log");
        let conf = dir.join("rsyslog.conf");
        let (global_tls, tcp_module) = match &tls {
            Some(g) => (
                g.as_str(),
                r#"module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")"#,
            ),
            None => ("", r#"module(load="imtcp")"#),
        };
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}" maxMessageSize="64k" {global_tls})
module(load="imudp")
{tcp_module}
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="raw" type="string" string="%rawmsg%\n")
*.* action(type="omfile" file="{out}" template="raw")
"#,
                dir = dir.display(),
                out = out.display()
            ),
        )
        .unwrap();
        let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("rsyslogd is missing: apt-get install -y rsyslog (.ci/run does)");
        let mut cmd = Command::new(bin);
        cmd.arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = spawn_for_process(cmd);
        wait_for_port(tcp, "rsyslogd", &mut child);
        Self {
            udp,
            tcp,
            out,
            child,
        }
    }

    /// The lines received so far, waiting up to 10 s for at least `n`.
    pub fn received(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<String> = std::fs::read_to_string(&self.out)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
