use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use btar_region::RegionConfig;

const ACCESS_KEY: &str = "btartest";
const SECRET_KEY: &str = "btartestsecret";

/// A real S3-protocol server (`s3s-fs`, a Rust implementation of the S3 API over a directory) on a free
/// loopback port. Killed on drop.
#[derive(Debug)]
pub struct S3Server {
    child: Option<Child>,
    port: u16,
    root: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("BTAR_S3_SERVER") {
        return PathBuf::from(p);
    }
    let home_bin = std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/s3s-fs"));
    match home_bin {
        Ok(p) if p.exists() => p,
        _ => PathBuf::from("s3s-fs"),
    }
}

impl S3Server {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut s = Self {
            child: None,
            port: 0,
            root,
            _dir: Some(dir),
        };
        s.spawn(crate::free_port());
        s
    }

    fn spawn(&mut self, port: u16) {
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&self.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start s3s-fs ({e}); install it with `cargo install s3s-fs@0.14.1 --features binary --locked` (see .ci/run)"));
        self.child = Some(child);
        self.port = port;
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a bucket (s3s-fs keeps one directory per bucket).
    pub fn create_bucket(&self, bucket: &str) {
        std::fs::create_dir_all(self.root.join(bucket)).unwrap();
    }

    /// Removes a bucket and everything in it, as a lost region would.
    pub fn delete_bucket(&self, bucket: &str) {
        let _ = std::fs::remove_dir_all(self.root.join(bucket));
    }

    /// Directory holding a bucket's objects, for tests that tamper with stored bytes.
    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join(bucket)
    }

    /// Stops the server (the region becomes unreachable); `restart` brings it back on the same data.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Same port, so region configs made before the outage reach it again.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn(self.port);
    }

    /// A region config for `bucket` on this server (creating the bucket).
    pub fn region(&self, name: &str, bucket: &str) -> RegionConfig {
        self.create_bucket(bucket);
        let mut cfg = crate::base(name, "s3-compatible", format!("s3://{bucket}"));
        for (k, v) in [
            ("aws_endpoint", self.endpoint()),
            ("aws_allow_http", "true".into()),
            ("aws_access_key_id", ACCESS_KEY.into()),
            ("aws_secret_access_key", SECRET_KEY.into()),
            ("aws_region", "us-east-1".into()),
            ("aws_virtual_hosted_style_request", "false".into()),
        ] {
            cfg.options.insert(k.into(), v);
        }
        cfg
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
