//! The servers' system logs: three Debian hosts writing RFC 3164 syslog (as
//! `/var/log/syslog` and `auth.log` look, without the `<PRI>`), and a PACS host
//! that forwards RFC 5424 with structured data. Times are UTC.
//!
//! Background: cron every quarter hour, the nightly logrotate (which on
//! `emr-app01` restarts rsyslog, a look-alike of log tampering), IT admins who
//! SSH in and always use sudo, now and then after mistyping their password, a
//! backup account that logs in every night and never uses sudo, accounts
//! created for new hires (not in an admin group), and internet scanners trying
//! a password or two. Incidents: ssh_bruteforce, privilege_escalation,
//! log_tampering, each labelled with its window; a brute force that gets in
//! is labelled account_compromise of the account as well.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::incidents::Label;
use super::population::{Population, is_weekend};
use super::{Rng, civil_from_days, rfc3339};
use crate::error::Result;

const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// A server that writes syslog.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// Host name.
    pub name: &'static str,
    /// RFC 5424 (else RFC 3164 without PRI).
    pub rfc5424: bool,
    /// The admin group of its distribution.
    pub admin_group: &'static str,
}

/// The hosts, in file order.
pub const HOSTS: &[Host] = &[
    Host {
        name: "emr-app01",
        rfc5424: false,
        admin_group: "sudo",
    },
    Host {
        name: "emr-db01",
        rfc5424: false,
        admin_group: "sudo",
    },
    Host {
        name: "jump01",
        rfc5424: false,
        admin_group: "sudo",
    },
    Host {
        name: "pacs01",
        rfc5424: true,
        admin_group: "wheel",
    },
];
const APP01: usize = 0;
const DB01: usize = 1;
const JUMP01: usize = 2;

/// The backup account: logs in to the database host nightly, never uses sudo.
pub const BACKUP_ACCOUNT: &str = "svc_backup";

/// One syslog message.
#[derive(Debug, Clone)]
struct Line {
    ts: i64,
    host: usize,
    /// RFC 5424 PRI: facility * 8 + severity.
    pri: u8,
    app: &'static str,
    pid: u32,
    msg: String,
    /// Part of an incident: kept even inside a silent gap.
    incident: bool,
}

const AUTHPRIV: u8 = 10 * 8 + 6;
const AUTHPRIV_NOTICE: u8 = 10 * 8 + 5;
const CRON: u8 = 9 * 8 + 6;
const DAEMON: u8 = 3 * 8 + 6;
const SYSLOG: u8 = 5 * 8 + 6;

const RSYSLOG_ORIGIN: &str = r#"[origin software="rsyslogd" swVersion="8.2302.0" x-pid="PID" x-info="https://www.rsyslog.com"]"#;

/// What [`generate`] wrote.
#[derive(Debug, Default)]
pub struct HostSummary {
    /// Lines per host file.
    pub lines: u64,
    /// The files.
    pub files: Vec<PathBuf>,
    /// The host-level incidents.
    pub labels: Vec<Label>,
}

struct Gen<'a> {
    rng: &'a mut Rng,
    lines: Vec<Line>,
    pid: u32,
}

impl Gen<'_> {
    fn push(&mut self, ts: i64, host: usize, pri: u8, app: &'static str, pid: u32, msg: String) {
        self.lines.push(Line {
            ts,
            host,
            pri,
            app,
            pid,
            msg,
            incident: false,
        });
    }
    /// A message from systemd (pid 1).
    fn systemd(&mut self, ts: i64, host: usize, msg: &str) {
        self.push(ts, host, DAEMON, "systemd", 1, msg.into());
    }

    /// rsyslogd's own message about itself (`start`, `exiting on signal 15.`, …).
    fn rsyslogd(&mut self, ts: i64, host: usize, pid: u32, what: &str) {
        let origin = RSYSLOG_ORIGIN.replace("PID", &pid.to_string());
        self.push(
            ts,
            host,
            SYSLOG,
            "rsyslogd",
            pid,
            format!("{origin} {what}"),
        );
    }

    fn next_pid(&mut self) -> u32 {
        self.pid = 1000 + (self.pid + 1 + self.rng.below(50) as u32 - 1000) % 60_000;
        self.pid
    }
    fn port(&mut self) -> u64 {
        32_768 + self.rng.below(28_000)
    }
    fn fingerprint(&mut self) -> String {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..43)
            .map(|_| B64[self.rng.below(64) as usize] as char)
            .collect()
    }

    /// An SSH session of `who`: login (after a mistyped password when
    /// `typo`), the `sudo` commands, logout.
    fn session(&mut self, host: usize, ts: i64, who: &Account, sudo: &[&str], typo: bool) {
        let (user, uid, ip) = (who.login.as_str(), who.uid, who.ip.as_str());
        let pid = self.next_pid();
        let port = self.port();
        let mut t = ts;
        if typo {
            self.push(
                t,
                host,
                AUTHPRIV_NOTICE,
                "sshd",
                pid,
                format!("Failed password for {user} from {ip} port {port} ssh2"),
            );
            t += (3 + self.rng.below(20) as i64) * SECOND;
            self.push(
                t,
                host,
                AUTHPRIV,
                "sshd",
                pid,
                format!("Accepted password for {user} from {ip} port {port} ssh2"),
            );
        } else {
            let fp = self.fingerprint();
            self.push(
                t,
                host,
                AUTHPRIV,
                "sshd",
                pid,
                format!(
                    "Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:{fp}"
                ),
            );
        }
        self.push(
            t,
            host,
            AUTHPRIV,
            "sshd",
            pid,
            format!("pam_unix(sshd:session): session opened for user {user}(uid={uid}) by (uid=0)"),
        );
        for cmd in sudo {
            t += (20 + self.rng.below(600) as i64) * SECOND;
            let sp = self.next_pid();
            self.push(
                t,
                host,
                AUTHPRIV,
                "sudo",
                sp,
                format!("{user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND={cmd}"),
            );
            self.push(t, host, AUTHPRIV, "sudo", sp, format!("pam_unix(sudo:session): session opened for user root(uid=0) by {user}(uid={uid})"));
            self.push(
                t + 2 * SECOND,
                host,
                AUTHPRIV,
                "sudo",
                sp,
                "pam_unix(sudo:session): session closed for user root".into(),
            );
        }
        t += (60 + self.rng.below(1200) as i64) * SECOND;
        self.push(
            t,
            host,
            AUTHPRIV,
            "sshd",
            pid,
            format!("Received disconnect from {ip} port {port}:11: disconnected by user"),
        );
        self.push(
            t,
            host,
            AUTHPRIV,
            "sshd",
            pid,
            format!("Disconnected from user {user} {ip} port {port}"),
        );
        self.push(
            t,
            host,
            AUTHPRIV,
            "sshd",
            pid,
            format!("pam_unix(sshd:session): session closed for user {user}"),
        );
    }

    /// Somebody at `ip` tries and fails to log in as `user` (an account that does not exist when `invalid`).
    fn failure(&mut self, host: usize, ts: i64, ip: &str, user: &str, invalid: bool) {
        let pid = self.next_pid();
        let port = self.port();
        if invalid {
            self.push(
                ts,
                host,
                AUTHPRIV,
                "sshd",
                pid,
                format!("Invalid user {user} from {ip} port {port}"),
            );
            self.push(
                ts + SECOND,
                host,
                AUTHPRIV_NOTICE,
                "sshd",
                pid,
                format!("Failed password for invalid user {user} from {ip} port {port} ssh2"),
            );
        } else {
            self.push(
                ts + SECOND,
                host,
                AUTHPRIV_NOTICE,
                "sshd",
                pid,
                format!("Failed password for {user} from {ip} port {port} ssh2"),
            );
        }
    }

    /// rsyslog stopped and started again by systemd, as a logrotate postrotate script does.
    fn restart_rsyslog(&mut self, host: usize, ts: i64) {
        let old = self.next_pid();
        self.systemd(
            ts,
            host,
            "Stopping rsyslog.service - System Logging Service...",
        );
        self.rsyslogd(ts, host, old, "exiting on signal 15.");
        self.systemd(
            ts + SECOND,
            host,
            "rsyslog.service: Deactivated successfully.",
        );
        self.systemd(
            ts + SECOND,
            host,
            "Stopped rsyslog.service - System Logging Service.",
        );
        self.systemd(
            ts + SECOND,
            host,
            "Starting rsyslog.service - System Logging Service...",
        );
        let new = self.next_pid();
        self.rsyslogd(ts + 2 * SECOND, host, new, "start");
        self.systemd(
            ts + 2 * SECOND,
            host,
            "Started rsyslog.service - System Logging Service.",
        );
    }
}

/// A shell account on the servers.
struct Account {
    login: String,
    uid: u32,
    /// Where its owner connects from.
    ip: String,
}

impl Account {
    fn new(login: &str, uid: u32, ip: &str) -> Self {
        Self {
            login: login.into(),
            uid,
            ip: ip.into(),
        }
    }
}

/// IT admins with shell accounts.
fn admins(pop: &Population) -> Vec<Account> {
    let mut out: Vec<Account> = pop
        .staff
        .iter()
        .filter(|s| s.role == "admin" && s.termination_day.is_none())
        .take(8)
        .enumerate()
        .map(|(i, s)| Account::new(&s.user_id, 1001 + i as u32, &format!("10.20.0.{}", 10 + i)))
        .collect();
    if out.is_empty() {
        out.push(Account::new("itadmin", 1001, "10.20.0.10"));
    }
    out
}

const ADMIN_COMMANDS: &[&str] = &[
    "/usr/bin/systemctl status postgresql",
    "/usr/bin/apt-get update",
    "/usr/bin/journalctl -u emr-app --since today",
    "/usr/bin/systemctl restart emr-app",
    "/usr/bin/df -h",
    "/usr/bin/tail -n 200 /var/log/emr/app.log",
    "/usr/sbin/ss -tlnp",
];
const SCANNER_USERS: &[&str] = &["admin", "test", "oracle", "ubuntu", "user", "guest", "pi"];

/// Writes `OUT/syslog/HOST.log` for every host and returns the host-level labels.
pub fn generate(
    rng: &mut Rng,
    pop: &Population,
    out: &Path,
    start_day: i64,
    days: u32,
    per_scenario: u32,
    gzip: bool,
) -> Result<HostSummary> {
    let admins = admins(pop);
    let mut g = Gen {
        rng,
        lines: Vec::new(),
        pid: 1000,
    };
    let mut new_hire_uid = 2000;
    for d in 0..i64::from(days.max(1)) {
        let date = start_day + d;
        let midnight = date * DAY;
        for h in 0..HOSTS.len() {
            // cron, every quarter hour.
            for q in 0..96 {
                let t = midnight + q * 15 * MINUTE + g.rng.below(2000) as i64 * 1000;
                let pid = g.next_pid();
                g.push(
                    t,
                    h,
                    CRON,
                    "CRON",
                    pid,
                    "pam_unix(cron:session): session opened for user root(uid=0) by root(uid=0)"
                        .into(),
                );
                let done = t + (1 + g.rng.below(3) as i64) * SECOND;
                g.push(
                    done,
                    h,
                    CRON,
                    "CRON",
                    pid,
                    "pam_unix(cron:session): session closed for user root".into(),
                );
            }
            // The nightly logrotate; emr-app01's configuration restarts rsyslog.
            let t = midnight + 10 * SECOND + g.rng.below(20) as i64 * SECOND;
            g.systemd(t, h, "Starting logrotate.service - Rotate log files...");
            if h == APP01 {
                g.restart_rsyslog(h, t + SECOND);
            } else {
                let pid = 600 + h as u32;
                g.rsyslogd(t + SECOND, h, pid, "rsyslogd was HUPed");
            }
            g.systemd(
                t + 3 * SECOND,
                h,
                "logrotate.service: Deactivated successfully.",
            );
            if !is_weekend(date) {
                // Admins at work: SSH in, sudo a few things, sometimes a typo first.
                for admin in &admins {
                    if g.rng.below(10) < 6 {
                        let ts = midnight + 8 * HOUR + g.rng.below(8 * 3600) as i64 * SECOND;
                        let cmds: Vec<&str> = (0..1 + g.rng.below(3))
                            .map(|_| {
                                ADMIN_COMMANDS[g.rng.below(ADMIN_COMMANDS.len() as u64) as usize]
                            })
                            .collect();
                        let typo = g.rng.below(12) == 0;
                        g.session(h, ts, admin, &cmds, typo);
                    }
                }
                // An account for a new hire now and then: not an admin group.
                if g.rng.below(20) == 0 {
                    let admin = &admins[g.rng.below(admins.len() as u64) as usize].login;
                    let ts = midnight + 10 * HOUR + g.rng.below(6 * 3600) as i64 * SECOND;
                    let name = format!("u{:05}", pop.staff.len() as u64 + g.rng.below(1000));
                    new_hire_uid += 1;
                    let pid = g.next_pid();
                    g.push(ts, h, AUTHPRIV, "sudo", pid, format!("{admin} : TTY=pts/0 ; PWD=/home/{admin} ; USER=root ; COMMAND=/usr/sbin/useradd -m -s /bin/bash {name}"));
                    let up = g.next_pid();
                    g.push(
                        ts + SECOND,
                        h,
                        AUTHPRIV,
                        "useradd",
                        up,
                        format!("new group: name={name}, GID={new_hire_uid}"),
                    );
                    g.push(ts + SECOND, h, AUTHPRIV, "useradd", up, format!("new user: name={name}, UID={new_hire_uid}, GID={new_hire_uid}, home=/home/{name}, shell=/bin/bash, from=/dev/pts/0"));
                    let pp = g.next_pid();
                    g.push(
                        ts + 30 * SECOND,
                        h,
                        AUTHPRIV,
                        "passwd",
                        pp,
                        format!("pam_unix(passwd:chauthtok): password changed for {name}"),
                    );
                }
            }
            if h == DB01 {
                let ts = midnight + 2 * HOUR + g.rng.below(600) as i64 * SECOND;
                let backup = Account::new(BACKUP_ACCOUNT, 998, "10.20.9.5");
                g.session(h, ts, &backup, &[], false);
            }
            if h == JUMP01 {
                // Internet scanners: a password or two each, a new address every time.
                for _ in 0..g.rng.below(5) {
                    let ip = format!("198.51.100.{}", 1 + g.rng.below(254));
                    let ts = midnight + g.rng.below(86_000) as i64 * SECOND;
                    for k in 0..1 + g.rng.below(2) as i64 {
                        let user = SCANNER_USERS[g.rng.below(SCANNER_USERS.len() as u64) as usize];
                        g.failure(h, ts + k * 3 * SECOND, &ip, user, true);
                    }
                }
            }
        }
    }
    let first = g.lines.len();
    let (labels, gaps) = incidents(&mut g, &admins, start_day, days, per_scenario);
    for l in &mut g.lines[first..] {
        l.incident = true;
    }
    // A host whose logging was stopped writes nothing until it is started again.
    g.lines.retain(|l| {
        l.incident
            || !gaps
                .iter()
                .any(|&(h, from, to)| h == l.host && l.ts > from && l.ts < to)
    });
    g.lines.sort_by_key(|l| (l.host, l.ts));

    let dir = out.join("syslog");
    std::fs::create_dir_all(&dir)?;
    let mut summary = HostSummary {
        labels,
        ..HostSummary::default()
    };
    for (h, host) in HOSTS.iter().enumerate() {
        let path = dir.join(format!(
            "{}.log{}",
            host.name,
            if gzip { ".gz" } else { "" }
        ));
        let file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut w: Box<dyn Write> = if gzip {
            Box::new(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::fast(),
            ))
        } else {
            Box::new(file)
        };
        for (seq, l) in g.lines.iter().filter(|l| l.host == h).enumerate() {
            if host.rfc5424 {
                writeln!(
                    w,
                    "<{}>1 {} {} {} {} - [meta sequenceId=\"{}\"] {}",
                    l.pri,
                    rfc3339(l.ts),
                    host.name,
                    l.app,
                    l.pid,
                    seq + 1,
                    l.msg
                )?;
            } else {
                let secs = l.ts.div_euclid(SECOND);
                let (_, m, d) = civil_from_days(secs.div_euclid(86_400));
                let sod = secs.rem_euclid(86_400);
                // systemd logs as systemd[1]; the kernel would have no pid.
                writeln!(
                    w,
                    "{} {d:>2} {:02}:{:02}:{:02} {} {}[{}]: {}",
                    MONTHS[m as usize - 1],
                    sod / 3600,
                    sod / 60 % 60,
                    sod % 60,
                    host.name,
                    l.app,
                    l.pid,
                    l.msg
                )?;
            }
            summary.lines += 1;
        }
        w.flush()?;
        drop(w);
        summary.files.push(path);
    }
    Ok(summary)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Injects the host-level incidents; returns their labels and the silent gaps
/// `(host, from, to)` during which the host logged nothing.
fn incidents(
    g: &mut Gen,
    admins: &[Account],
    start_day: i64,
    days: u32,
    per_scenario: u32,
) -> (Vec<Label>, Vec<(usize, i64, i64)>) {
    let mut labels = Vec::new();
    let mut compromised = Vec::new();
    let mut gaps = Vec::new();
    let days = i64::from(days.max(1));
    for &scenario in super::incidents::HOST_SCENARIOS {
        for k in 0..per_scenario.max(1) {
            let day = start_day + g.rng.below(days as u64) as i64;
            let start = day * DAY + g.rng.below(86_400 - 6 * 3600) as i64 * SECOND;
            let first = g.lines.len();
            let actor = match scenario {
                "ssh_bruteforce" => {
                    let ip = format!("192.0.2.{}", 1 + g.rng.below(254));
                    let host = if k % 2 == 0 {
                        JUMP01
                    } else {
                        g.rng.below(HOSTS.len() as u64) as usize
                    };
                    if k % 2 == 0 {
                        // Blatant: hundreds of guesses at common accounts in minutes.
                        let mut t = start;
                        for _ in 0..150 + g.rng.below(250) {
                            let user = ["root", "admin", "postgres", "test", "oracle"]
                                [g.rng.below(5) as usize];
                            g.failure(host, t, &ip, user, user != "root" && user != "postgres");
                            t += (300 + g.rng.below(3000) as i64) * 1000;
                        }
                    } else {
                        // Subtle: a few dozen guesses at the backup account over hours, then in.
                        let mut t = start;
                        for _ in 0..25 + g.rng.below(35) {
                            g.failure(host, t, &ip, BACKUP_ACCOUNT, false);
                            t += (60 + g.rng.below(400) as i64) * SECOND;
                        }
                        let pid = g.next_pid();
                        let port = g.port();
                        g.push(
                            t,
                            host,
                            AUTHPRIV,
                            "sshd",
                            pid,
                            format!(
                                "Accepted password for {BACKUP_ACCOUNT} from {ip} port {port} ssh2"
                            ),
                        );
                        // The guesser got in: the account is compromised too.
                        compromised.push(Label {
                            scenario: "account_compromise",
                            actor: BACKUP_ACCOUNT.to_string(),
                            patient_id: None,
                            start_us: start + SECOND,
                            end_us: t,
                        });
                        g.push(t, host, AUTHPRIV, "sshd", pid, format!("pam_unix(sshd:session): session opened for user {BACKUP_ACCOUNT}(uid=998) by (uid=0)"));
                    }
                    ip
                }
                "privilege_escalation" => {
                    let host = g.rng.below(HOSTS.len() as u64) as usize;
                    let group = HOSTS[host].admin_group;
                    if k % 2 == 0 {
                        // A new account, straight into the admin group, then a root shell.
                        let name = format!("svc_sync{}", g.rng.below(100));
                        let uid = 1500 + g.rng.below(400);
                        let up = g.next_pid();
                        g.push(start, host, AUTHPRIV, "useradd", up, format!("new user: name={name}, UID={uid}, GID={uid}, home=/home/{name}, shell=/bin/bash, from=/dev/pts/1"));
                        let mp = g.next_pid();
                        g.push(
                            start + 20 * SECOND,
                            host,
                            AUTHPRIV,
                            "usermod",
                            mp,
                            format!("add '{name}' to group '{group}'"),
                        );
                        g.push(
                            start + 20 * SECOND,
                            host,
                            AUTHPRIV,
                            "usermod",
                            mp,
                            format!("add '{name}' to shadow group '{group}'"),
                        );
                        let sp = g.next_pid();
                        let t = start + (5 + g.rng.below(50) as i64) * MINUTE;
                        g.push(
                            t,
                            host,
                            AUTHPRIV,
                            "sudo",
                            sp,
                            format!(
                                "{name} : TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=/bin/bash"
                            ),
                        );
                        name
                    } else {
                        // The backup account, which never used sudo, becomes root:
                        // after two nights of backups, so that it has a history.
                        let settled = 2.min(days - 1);
                        let day = start_day + settled + g.rng.below((days - settled) as u64) as i64;
                        let start = day * DAY + 3 * HOUR + g.rng.below(12 * 3600) as i64 * SECOND;
                        let sp = g.next_pid();
                        g.push(start, DB01, AUTHPRIV, "sudo", sp, format!("{BACKUP_ACCOUNT} : TTY=pts/0 ; PWD=/var/backups ; USER=root ; COMMAND=/bin/sh"));
                        g.push(start, DB01, AUTHPRIV, "sudo", sp, format!("pam_unix(sudo:session): session opened for user root(uid=0) by {BACKUP_ACCOUNT}(uid=998)"));
                        BACKUP_ACCOUNT.to_string()
                    }
                }
                _ => {
                    // An admin account used to blind the host.
                    let host = g.rng.below(HOSTS.len() as u64) as usize;
                    let admin = &admins[g.rng.below(admins.len() as u64) as usize].login;
                    let sp = g.next_pid();
                    let sudo = |cmd: &str| {
                        format!("{admin} : TTY=pts/2 ; PWD=/root ; USER=root ; COMMAND={cmd}")
                    };
                    match k % 3 {
                        0 => {
                            g.push(
                                start,
                                host,
                                AUTHPRIV,
                                "sudo",
                                sp,
                                sudo("/usr/bin/systemctl stop auditd"),
                            );
                            g.systemd(
                                start + SECOND,
                                host,
                                "Stopping auditd.service - Security Auditing Service...",
                            );
                            let ap = g.next_pid();
                            g.push(
                                start + SECOND,
                                host,
                                DAEMON,
                                "auditd",
                                ap,
                                "The audit daemon is exiting.".into(),
                            );
                            g.systemd(
                                start + 2 * SECOND,
                                host,
                                "Stopped auditd.service - Security Auditing Service.",
                            );
                        }
                        1 => {
                            g.push(
                                start,
                                host,
                                AUTHPRIV,
                                "sudo",
                                sp,
                                sudo("/usr/sbin/auditctl -D"),
                            );
                            g.push(
                                start + 30 * SECOND,
                                host,
                                AUTHPRIV,
                                "sudo",
                                sp + 1,
                                sudo("/usr/bin/truncate -s 0 /var/log/auth.log"),
                            );
                        }
                        _ => {
                            // Logging stopped for hours, then quietly started again.
                            g.push(
                                start,
                                host,
                                AUTHPRIV,
                                "sudo",
                                sp,
                                sudo("/usr/bin/systemctl stop rsyslog"),
                            );
                            g.systemd(
                                start + SECOND,
                                host,
                                "Stopping rsyslog.service - System Logging Service...",
                            );
                            let rp = g.next_pid();
                            g.rsyslogd(start + SECOND, host, rp, "exiting on signal 15.");
                            let back = start + (3 + g.rng.below(4) as i64) * HOUR;
                            let np = g.next_pid();
                            g.rsyslogd(back, host, np, "start");
                            gaps.push((host, start + SECOND, back));
                        }
                    }
                    HOSTS[host].name.to_string()
                }
            };
            let these = &g.lines[first..];
            labels.push(Label {
                scenario,
                actor,
                patient_id: None,
                start_us: these.iter().map(|l| l.ts).min().unwrap_or(start),
                end_us: these.iter().map(|l| l.ts).max().unwrap_or(start),
            });
        }
    }
    labels.extend(compromised);
    (labels, gaps)
}
